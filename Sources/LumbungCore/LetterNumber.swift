/// An official letter number (*nomor surat*) a request refers to, e.g. `800/123/Diskominfo/2026`.
public enum LetterNumber {
    /// The longest letter number accepted.
    public static let maxLength = 100

    /// The trimmed number (nil when absent or blank), or the sentence saying why it is not
    /// accepted and what would be: 1–100 characters of letters, digits, spaces and `/ . - _ : ( )`.
    public static func check(_ letter: String?) -> Result<String?, LetterNumberError> {
        guard let letter else { return .success(nil) }
        let start = letter.firstIndex { !$0.isWhitespace } ?? letter.endIndex
        let end = letter.lastIndex { !$0.isWhitespace }.map { letter.index(after: $0) } ?? start
        guard start < end else { return .success(nil) }
        let text = String(letter[start..<end])
        let allowed = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || " /.-_:()".contains($0)) }
        guard text.count <= maxLength, allowed else {
            return .failure(
                LetterNumberError(
                    message: "the letter number '\(text)' is not accepted; use 1–\(maxLength) characters of letters, digits, spaces and / . - _ : ( ), e.g. 800/123/Diskominfo/2026"))
        }
        return .success(text)
    }
}

/// A letter number that is not accepted, with the sentence saying why.
public struct LetterNumberError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong and what would be accepted.
    public var message: String
    /// The message.
    public var description: String { message }
}
