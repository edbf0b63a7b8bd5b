extension StringProtocol {
    /// The text without leading and trailing whitespace (spaces, tabs, newlines, carriage
    /// returns), as Foundation's `trimmingCharacters(in: .whitespacesAndNewlines)` for the ASCII
    /// output of the commands and kernel files the agent reads (it does not link Foundation).
    func trimmed() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
