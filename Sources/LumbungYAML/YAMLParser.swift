/// Byte values the scanner compares against.
private enum A {
    static let tab: UInt8 = 0x09, lf: UInt8 = 0x0A, space: UInt8 = 0x20, bang: UInt8 = 0x21
    static let quote: UInt8 = 0x22, hash: UInt8 = 0x23, percent: UInt8 = 0x25, amp: UInt8 = 0x26
    static let apos: UInt8 = 0x27, star: UInt8 = 0x2A, plus: UInt8 = 0x2B, comma: UInt8 = 0x2C
    static let dash: UInt8 = 0x2D, dot: UInt8 = 0x2E, colon: UInt8 = 0x3A, gt: UInt8 = 0x3E
    static let question: UInt8 = 0x3F, at: UInt8 = 0x40, lbracket: UInt8 = 0x5B, backslash: UInt8 = 0x5C
    static let rbracket: UInt8 = 0x5D, backtick: UInt8 = 0x60, lbrace: UInt8 = 0x7B, pipe: UInt8 = 0x7C
    static let rbrace: UInt8 = 0x7D
}

/// Recursive-descent parser for the supported YAML subset, over UTF-8 bytes.
///
/// Invariant between block nodes: `pos` is at the start of a line, or inside
/// that line's leading spaces, or at the end of input. Byte value 0 stands for
/// end of input (raw control characters are rejected up front).
struct YAMLParser {
    private let b: [UInt8]
    private var pos = 0
    private var line = 1
    private var lineStart = 0
    private var depth = 0
    /// Opening bracket of the innermost flow collection, for "unterminated" errors.
    private var flowOpen = 0
    private var flowOpenIsSequence = true
    private static let maxDepth = 100

    init(_ text: String) {
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        if bytes.contains(0x0D) {  // CRLF and lone CR become LF
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                if bytes[i] == 0x0D {
                    out.append(A.lf)
                    if i + 1 < bytes.count, bytes[i + 1] == A.lf { i += 1 }
                } else {
                    out.append(bytes[i])
                }
                i += 1
            }
            bytes = out
        }
        b = bytes
    }

    // MARK: - Byte helpers

    private func at(_ i: Int) -> UInt8 { i >= 0 && i < b.count ? b[i] : 0 }
    private var cur: UInt8 { at(pos) }
    private var isEOF: Bool { pos >= b.count }
    private static func isBlank(_ c: UInt8) -> Bool { c == A.space || c == A.tab }
    private static func isBreak(_ c: UInt8) -> Bool { c == A.lf || c == 0 }
    private static func isSeparator(_ c: UInt8) -> Bool { isBlank(c) || isBreak(c) }
    private static func isFlowIndicator(_ c: UInt8) -> Bool {
        c == A.comma || c == A.lbracket || c == A.rbracket || c == A.lbrace || c == A.rbrace
    }
    private var atSequenceItem: Bool { cur == A.dash && Self.isSeparator(at(pos + 1)) }
    private var atMappingColon: Bool { cur == A.colon && Self.isSeparator(at(pos + 1)) }

    /// `---` or `...` at the very start of the line at `p`, followed by a separator.
    private func isDocumentMarker(at p: Int) -> Bool {
        let c = at(p)
        return (c == A.dash || c == A.dot) && at(p + 1) == c && at(p + 2) == c
            && Self.isSeparator(at(p + 3)) && (p == 0 || at(p - 1) == A.lf)
    }
    private var atDocumentMarker: Bool { pos == lineStart && isDocumentMarker(at: pos) }

    private mutating func newline() {
        pos += 1
        line += 1
        lineStart = pos
    }
    private mutating func skipBlanks() { while Self.isBlank(cur) { pos += 1 } }
    private mutating func skipToLineEnd() { while !Self.isBreak(cur) { pos += 1 } }

    // MARK: - Errors

    /// An error at byte offset `p` (line and column are computed from the start).
    private func fail(_ p: Int, _ message: String) -> YAMLError {
        var ln = 1, col = 1, i = 0
        let end = min(max(p, 0), b.count)
        while i < end {
            if b[i] == A.lf { ln += 1; col = 1 } else if b[i] & 0xC0 != 0x80 { col += 1 }
            i += 1
        }
        return YAMLError(line: ln, column: col, message: message)
    }

    /// Up to 40 bytes of source starting at `p`, stopping at whitespace, for messages.
    private func token(at p: Int) -> String {
        var e = p
        while e - p < 40, !Self.isSeparator(at(e)) { e += 1 }
        return String(decoding: b[min(p, b.count)..<min(e, b.count)], as: UTF8.self)
    }

    private func character(at p: Int) -> String { at(p) == 0 ? "end of input" : "'\(token(at: p).prefix(1))'" }

    private func unterminatedFlow() -> YAMLError {
        flowOpenIsSequence
            ? fail(flowOpen, "unterminated flow sequence: the '[' opened here has no matching ']'")
            : fail(flowOpen, "unterminated flow mapping: the '{' opened here has no matching '}'")
    }

    private func unterminatedQuote(_ open: Int, _ hint: String = "") -> YAMLError {
        at(open) == A.quote
            ? fail(open, "unterminated double-quoted string: the '\"' opened here is never closed" + hint)
            : fail(open, "unterminated single-quoted string: the \"'\" opened here is never closed" + hint)
    }

    // MARK: - Document

    mutating func parseDocument() throws(YAMLError) -> YAMLNode? {
        if let bad = b.firstIndex(where: { ($0 < 0x20 && $0 != A.tab && $0 != A.lf) || $0 == 0x7F }) {
            let hex = String(b[bad], radix: 16, uppercase: true)
            throw fail(bad, "control character U+\(hex.count < 2 ? "000" : "00")\(hex) is not allowed; write it as an escape inside double quotes")
        }
        guard try nextContentLine() != nil else { return nil }
        if pos == lineStart, cur == A.percent {
            throw fail(pos, "directives are not supported (found '\(token(at: pos))'); remove the line")
        }
        if atDocumentMarker, cur == A.dash {
            pos += 3
            try finishMarkerLine("---")
            guard try nextContentLine() != nil else { return nil }
        }
        var root: YAMLNode?
        let rootIndent = pos - lineStart
        if !atDocumentMarker {
            root = try parseBlockNode(indent: rootIndent, parent: -1, allowCollections: true)
        }
        guard try nextContentLine() != nil else { return root }
        if atDocumentMarker, cur == A.dot {
            pos += 3
            try finishMarkerLine("...")
            guard try nextContentLine() != nil else { return root }
            if !(atDocumentMarker && cur == A.dash) {
                throw fail(pos, "unexpected content after the document end marker '...'")
            }
        }
        if atDocumentMarker {
            throw fail(pos, "a second document ('---') is not supported; a config file holds exactly one document")
        }
        if pos - lineStart < rootIndent {
            throw fail(pos, "bad indentation: this line starts at column \(pos - lineStart + 1), left of the document's first line (column \(rootIndent + 1))")
        }
        throw fail(pos, "unexpected content after the document's root value; it must be a single mapping, sequence or scalar (check the indentation)")
    }

    private mutating func finishMarkerLine(_ marker: String) throws(YAMLError) {
        skipBlanks()
        if cur == A.hash { skipToLineEnd() }
        if cur == A.lf { newline() } else if !isEOF {
            throw fail(pos, "content on the same line as '\(marker)' is not supported; start it on the next line")
        }
    }

    /// Skips blank and comment lines. Precondition: `pos` is at a line start or
    /// inside its leading spaces. Returns the indentation of the next content
    /// line with `pos` on its first character, or nil at end of input.
    private mutating func nextContentLine() throws(YAMLError) -> Int? {
        while true {
            while cur == A.space { pos += 1 }
            if cur == A.tab {
                let tab = pos
                skipBlanks()
                if cur != A.hash, !Self.isBreak(cur) {
                    throw fail(tab, "tabs are not allowed for indentation; indent with spaces")
                }
            }
            if cur == A.hash { skipToLineEnd() }
            if cur == A.lf { newline(); continue }
            if isEOF { return nil }
            return pos - lineStart
        }
    }

    /// After a complete value: allows trailing blanks and a comment, then the line break.
    private mutating func finishLine(after what: String) throws(YAMLError) {
        skipBlanks()
        if cur == A.hash {
            guard Self.isBlank(at(pos - 1)) else { throw fail(pos, "a comment needs a space before '#'") }
            skipToLineEnd()
        }
        if cur == A.lf { newline() } else if !isEOF {
            throw fail(pos, "unexpected '\(token(at: pos))' after \(what)")
        }
    }

    // MARK: - Block structure

    /// Parses what follows `key:` or `-` (the indicator already consumed).
    /// `parent` is the indentation of the owning mapping or sequence.
    private mutating func parseValue(parent n: Int, inMapping: Bool, line ownerLine: Int) throws(YAMLError) -> YAMLNode {
        skipBlanks()
        guard cur == A.hash || Self.isBreak(cur) else {
            return try parseBlockNode(indent: pos - lineStart, parent: n, allowCollections: !inMapping)
        }
        try finishLine(after: inMapping ? "':'" : "'-'")
        let empty = YAMLNode.scalar(YAMLScalar("", style: .plain, line: ownerLine))
        guard let indent = try nextContentLine(), !atDocumentMarker else { return empty }
        if indent > n { return try parseBlockNode(indent: indent, parent: n, allowCollections: true) }
        if indent == n, inMapping, atSequenceItem { return try parseBlockSequence(indent: n, compact: true) }
        return empty
    }

    /// Parses a node whose first character is at `pos`, in column `indent`.
    /// `allowCollections` is false right after `key:` on the same line.
    private mutating func parseBlockNode(indent c: Int, parent n: Int, allowCollections: Bool) throws(YAMLError) -> YAMLNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail(pos, "nesting is deeper than \(Self.maxDepth) levels") }
        let ch = cur
        if atSequenceItem {
            guard allowCollections else {
                throw fail(pos, "a block sequence cannot start on the same line as its key; start it on the next line")
            }
            return try parseBlockSequence(indent: c, compact: false)
        }
        if ch == A.pipe || ch == A.gt { return try parseBlockScalar(parent: n) }
        if ch == A.lbracket || ch == A.lbrace {
            let node = try parseFlowNode(parent: n)
            skipBlanks()
            if cur == A.colon {
                throw fail(pos, "flow collections cannot be mapping keys; keys must be plain or quoted scalars")
            }
            try finishLine(after: "the flow collection")
            return node
        }
        try checkNodeStart(flow: false)
        if looksLikeKey() {
            guard allowCollections else {
                throw fail(pos, "a nested mapping cannot start on the same line as its key; put it on the next line, indented")
            }
            return try parseBlockMapping(indent: c)
        }
        if ch == A.quote || ch == A.apos {
            let startLine = line
            let (text, style) = try readQuoted(parent: n)
            try finishLine(after: "the quoted string")
            return .scalar(YAMLScalar(text, style: style, line: startLine))
        }
        return try parsePlainBlock(parent: n, column: c, mayBeKey: allowCollections)
    }

    /// Refuses unsupported node properties and characters that cannot start a plain scalar.
    private func checkNodeStart(flow: Bool) throws(YAMLError) {
        let ch = cur, next = at(pos + 1)
        let indicatorAlone = Self.isSeparator(next) || (flow && Self.isFlowIndicator(next))
        switch ch {
        case A.amp:
            throw fail(pos, "anchors are not supported (found '\(token(at: pos))'); write the value out in full")
        case A.star:
            throw fail(pos, "aliases are not supported (found '\(token(at: pos))'); write the value out in full")
        case A.bang:
            throw fail(pos, "tags are not supported (found '\(token(at: pos))'); quote the value if it must be a string")
        case A.question where indicatorAlone:
            throw fail(pos, "complex mapping keys ('? ') are not supported; keys must be plain or quoted scalars")
        case A.lbracket, A.lbrace:
            throw fail(pos, "flow collections cannot be mapping keys; keys must be plain or quoted scalars")
        case A.comma, A.rbracket, A.rbrace:
            throw fail(pos, "unexpected \(character(at: pos))")
        case A.hash, A.percent, A.at, A.backtick, A.pipe, A.gt:
            throw fail(pos, "\(character(at: pos)) cannot start a plain value; put the value in quotes")
        case A.dash where indicatorAlone, A.colon where indicatorAlone:
            throw fail(pos, "unexpected \(character(at: pos))")
        default:
            return
        }
    }

    /// True when the current line starts with `key:` (followed by a separator).
    private mutating func looksLikeKey() -> Bool {
        let saved = self
        defer { self = saved }
        do {
            _ = try readKey()
            skipBlanks()
            return atMappingColon
        } catch {
            return false
        }
    }

    /// A single-line plain or quoted key.
    private mutating func readKey() throws(YAMLError) -> (text: String, style: YAMLScalar.Style) {
        try checkNodeStart(flow: false)
        if cur == A.quote || cur == A.apos { return try readQuoted(parent: 0, singleLine: true) }
        return (String(decoding: b[readPlainSegment(flow: false)], as: UTF8.self), .plain)
    }

    private mutating func parseBlockMapping(indent m: Int) throws(YAMLError) -> YAMLNode {
        var entries: [YAMLNode.Entry] = []
        var seen: [String: Int] = [:]
        while true {
            let keyPos = pos, keyLine = line
            if atSequenceItem {
                throw fail(pos, "expected a mapping key at column \(m + 1), found a sequence item '-'")
            }
            let key = try readKey()
            skipBlanks()
            guard atMappingColon else {
                var message = "expected ':' after mapping key '\(key.text)'"
                if key.style == .plain, key.text.contains(":") {
                    message += "; the ':' that ends a key must be followed by a space"
                }
                throw fail(keyPos, message)
            }
            if let first = seen[key.text] {
                throw fail(keyPos, "duplicate key '\(key.text)' (first defined on line \(first))")
            }
            seen[key.text] = keyLine
            pos += 1
            let value = try parseValue(parent: m, inMapping: true, line: keyLine)
            entries.append(YAMLNode.Entry(key: key.text, value: value, line: keyLine))
            guard let indent = try nextContentLine(), !atDocumentMarker, indent >= m else { break }
            if indent > m {
                throw fail(pos, "bad indentation: this line starts at column \(indent + 1), but the keys of the mapping above are at column \(m + 1)")
            }
        }
        return .mapping(entries)
    }

    /// `compact`: the sequence is the value of a mapping key at the same indentation.
    private mutating func parseBlockSequence(indent m: Int, compact: Bool) throws(YAMLError) -> YAMLNode {
        var items: [YAMLNode] = []
        while true {
            let itemLine = line
            pos += 1
            items.append(try parseValue(parent: m, inMapping: false, line: itemLine))
            guard let indent = try nextContentLine(), !atDocumentMarker, indent >= m else { break }
            if indent > m {
                throw fail(pos, "bad indentation: this line starts at column \(indent + 1), but the items of the sequence above start at column \(m + 1)")
            }
            if !atSequenceItem {
                if compact { break }
                throw fail(pos, "expected a sequence item '- ' at column \(m + 1), found '\(token(at: pos))'")
            }
        }
        return .sequence(items)
    }

    // MARK: - Plain scalars

    /// Reads plain-scalar text up to the end of the line, `: `, ` #` (and flow
    /// indicators in flow context); returns the byte range without trailing blanks.
    private mutating func readPlainSegment(flow: Bool) -> Range<Int> {
        let start = pos
        var end = pos
        while true {
            let ch = cur
            if Self.isBreak(ch) { break }
            if ch == A.colon {
                let next = at(pos + 1)
                if Self.isSeparator(next) || (flow && Self.isFlowIndicator(next)) { break }
            }
            if ch == A.hash, pos > start, Self.isBlank(at(pos - 1)) { break }
            if flow, Self.isFlowIndicator(ch) { break }
            pos += 1
            if !Self.isBlank(ch) { end = pos }
        }
        return start..<end
    }

    /// A plain scalar in block context, with continuation lines indented more than `parent`.
    private mutating func parsePlainBlock(parent n: Int, column c: Int, mayBeKey: Bool) throws(YAMLError) -> YAMLNode {
        let startLine = line, startPos = pos
        let first = readPlainSegment(flow: false)
        var bytes = Array(b[first])
        func scalar(_ bytes: [UInt8]) -> YAMLNode {
            .scalar(YAMLScalar(String(decoding: bytes, as: UTF8.self), style: .plain, line: startLine))
        }
        if cur == A.colon { throw fail(pos, "unexpected ':'") }
        if cur == A.hash {  // a comment ends a plain scalar
            skipToLineEnd()
            if cur == A.lf { newline() }
            return scalar(bytes)
        }
        if isEOF { return scalar(bytes) }
        newline()
        var breaks = 0
        while true {
            let saved = self
            while cur == A.space { pos += 1 }
            let indent = pos - lineStart
            if cur == A.tab {
                let tab = pos
                skipBlanks()
                if !Self.isBreak(cur), cur != A.hash {
                    throw fail(tab, "tabs are not allowed for indentation; indent with spaces")
                }
            }
            if Self.isBreak(cur) {
                if isEOF { break }
                breaks += 1
                newline()
                continue
            }
            if indent <= n || cur == A.hash || isDocumentMarker(at: lineStart) {
                self = saved
                break
            }
            let segment = readPlainSegment(flow: false)
            if atMappingColon {
                if mayBeKey, indent == c {
                    throw fail(startPos, "expected ':' after mapping key '\(String(decoding: b[first], as: UTF8.self))'")
                }
                throw fail(lineStart + indent, "bad indentation: a 'key: value' entry cannot continue a plain value; align keys at column \(n + 1)")
            }
            if breaks == 0 { bytes.append(A.space) } else { bytes += repeatElement(A.lf, count: breaks) }
            bytes += b[segment]
            breaks = 0
            if cur == A.hash {
                skipToLineEnd()
                if cur == A.lf { newline() }
                break
            }
            if isEOF { break }
            newline()
        }
        return scalar(bytes)
    }

    // MARK: - Quoted scalars

    /// Reads a single- or double-quoted scalar starting at the quote. Line
    /// breaks fold like YAML (one break → space, n+1 breaks → n newlines);
    /// continuation lines must be indented more than `parent`.
    private mutating func readQuoted(parent n: Int, singleLine: Bool = false) throws(YAMLError) -> (String, YAMLScalar.Style) {
        let open = pos, q = cur, double = cur == A.quote
        pos += 1
        var out: [UInt8] = []
        var keep = 0  // length of `out` without trailing literal blanks
        while true {
            let ch = cur
            if isEOF { throw unterminatedQuote(open) }
            if ch == q {
                if !double, at(pos + 1) == A.apos {
                    out.append(A.apos)
                    pos += 2
                    keep = out.count
                    continue
                }
                pos += 1
                break
            }
            if ch == A.lf || (double && ch == A.backslash && at(pos + 1) == A.lf) {
                if singleLine { throw unterminatedQuote(open) }
                let escaped = ch == A.backslash
                if escaped { pos += 1 } else { out.removeLast(out.count - keep) }
                try foldQuotedBreak(into: &out, escaped: escaped, parent: n, open: open)
                keep = out.count
                continue
            }
            if double, ch == A.backslash {
                try readEscape(into: &out, open: open)
                keep = out.count
                continue
            }
            out.append(ch)
            pos += 1
            if !Self.isBlank(ch) { keep = out.count }
        }
        return (String(decoding: out, as: UTF8.self), double ? .doubleQuoted : .singleQuoted)
    }

    /// At a line break inside quotes: consumes it, blank lines, and the next line's indentation.
    private mutating func foldQuotedBreak(into out: inout [UInt8], escaped: Bool, parent n: Int, open: Int) throws(YAMLError) {
        newline()
        var empties = 0
        while true {
            skipBlanks()
            guard cur == A.lf else { break }
            empties += 1
            newline()
        }
        if isEOF || isDocumentMarker(at: lineStart) { throw unterminatedQuote(open) }
        if pos - lineStart <= n {
            throw unterminatedQuote(open, " (a continuation line must be indented more than its key)")
        }
        if escaped || empties > 0 {
            out += repeatElement(A.lf, count: empties)
        } else {
            out.append(A.space)
        }
    }

    private mutating func readEscape(into out: inout [UInt8], open: Int) throws(YAMLError) {
        let start = pos
        let e = at(pos + 1)
        pos += 2
        var hexDigits = 0
        switch e {
        case 0: throw unterminatedQuote(open)
        case 0x30: out.append(0)
        case 0x61: out.append(0x07)
        case 0x62: out.append(0x08)
        case 0x74, A.tab: out.append(A.tab)
        case 0x6E: out.append(A.lf)
        case 0x76: out.append(0x0B)
        case 0x66: out.append(0x0C)
        case 0x72: out.append(0x0D)
        case 0x65: out.append(0x1B)
        case A.space, A.quote, 0x2F, A.backslash: out.append(e)
        case 0x4E: out += [0xC2, 0x85]  // \N  U+0085
        case 0x5F: out += [0xC2, 0xA0]  // \_  U+00A0
        case 0x4C: out += [0xE2, 0x80, 0xA8]  // \L  U+2028
        case 0x50: out += [0xE2, 0x80, 0xA9]  // \P  U+2029
        case 0x78: hexDigits = 2
        case 0x75: hexDigits = 4
        case 0x55: hexDigits = 8
        default:
            throw fail(start, "unknown escape sequence '\\\(token(at: start + 1).prefix(1))' in a double-quoted string")
        }
        guard hexDigits > 0 else { return }
        var value: UInt32 = 0
        for _ in 0..<hexDigits {
            guard let d = CoreSchema.digit(cur) else {
                throw fail(start, "invalid escape: '\\\(token(at: start + 1).prefix(1))' needs \(hexDigits) hex digits")
            }
            value = value << 4 | UInt32(d)
            pos += 1
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw fail(start, "invalid escape '\(String(decoding: b[start..<pos], as: UTF8.self))': not a Unicode scalar value")
        }
        UTF8.encode(scalar) { out.append($0) }
    }

    // MARK: - Block scalars

    private mutating func parseBlockScalar(parent n: Int) throws(YAMLError) -> YAMLNode {
        enum Chomping { case clip, strip, keep }
        let startLine = line
        let folded = cur == A.gt
        pos += 1
        var chomping = Chomping.clip
        if cur == A.dash || cur == A.plus {
            chomping = cur == A.dash ? .strip : .keep
            pos += 1
        }
        if cur >= 0x31, cur <= 0x39 {
            throw fail(pos, "explicit indentation indicators ('\(folded ? ">" : "|")\(token(at: pos).prefix(1))') are not supported; remove the digit and indent the content consistently")
        }
        if !Self.isSeparator(cur) && cur != A.hash {
            throw fail(pos, "unexpected '\(token(at: pos))' after the block scalar indicator; only '-' or '+' may follow it")
        }
        try finishLine(after: "the block scalar indicator")

        var out: [UInt8] = []
        var contentIndent: Int?
        var leadingMax = 0, empties = 0
        var hasContent = false, previousMoreIndented = false, lastHadBreak = false
        while !isEOF {
            let ls = pos
            var s = 0
            while at(ls + s) == A.space { s += 1 }
            var k = ls + s
            while Self.isBlank(at(k)) { k += 1 }
            let blank = Self.isBreak(at(k))
            if let ci = contentIndent {
                if s < ci {
                    guard blank else { break }
                    empties += 1
                    pos = k
                    if cur == A.lf { newline() }
                    continue
                }
                if s == 0, isDocumentMarker(at: ls) { break }
            } else {
                if blank {
                    leadingMax = max(leadingMax, s)
                    empties += 1
                    pos = k
                    if cur == A.lf { newline() }
                    continue
                }
                if s <= n || isDocumentMarker(at: ls) { break }
                if at(ls + s) == A.tab { throw fail(ls + s, "tabs are not allowed for indentation; indent with spaces") }
                if leadingMax > s {
                    throw fail(ls, "bad indentation: a leading blank line of the block scalar has more spaces than its first content line")
                }
                contentIndent = s
            }
            let textStart = ls + (contentIndent ?? 0)
            var e = textStart
            while !Self.isBreak(at(e)) { e += 1 }
            pos = e
            if e == textStart {  // exactly indented empty line
                empties += 1
                if cur == A.lf { newline() }
                continue
            }
            if folded {
                let moreIndented = Self.isBlank(at(textStart))
                if !hasContent {
                    out += repeatElement(A.lf, count: empties)
                } else if !previousMoreIndented, !moreIndented {
                    if empties == 0 { out.append(A.space) } else { out += repeatElement(A.lf, count: empties) }
                } else {
                    out += repeatElement(A.lf, count: empties + 1)
                }
                previousMoreIndented = moreIndented
            } else {
                if hasContent { out.append(A.lf) }
                out += repeatElement(A.lf, count: empties)
            }
            out += b[textStart..<e]
            hasContent = true
            empties = 0
            lastHadBreak = cur == A.lf
            if lastHadBreak { newline() }
        }
        switch chomping {
        case .strip: break
        case .clip: if hasContent, lastHadBreak { out.append(A.lf) }
        case .keep:
            if hasContent, lastHadBreak { out.append(A.lf) }
            out += repeatElement(A.lf, count: empties)
        }
        return .scalar(YAMLScalar(String(decoding: out, as: UTF8.self), style: folded ? .folded : .literal, line: startLine))
    }

    // MARK: - Flow collections

    /// Skips blanks, comments and line breaks inside a flow collection; lines
    /// with content must be indented more than `parent`. Returns the number of
    /// line breaks crossed and whether a comment was skipped.
    @discardableResult
    private mutating func skipFlowSpace(parent n: Int) throws(YAMLError) -> (breaks: Int, comment: Bool) {
        var breaks = 0, comment = false
        while true {
            let ch = cur
            if Self.isBlank(ch) {
                pos += 1
            } else if ch == A.hash, pos == lineStart || Self.isBlank(at(pos - 1)) {
                comment = true
                skipToLineEnd()
            } else if ch == A.lf {
                newline()
                breaks += 1
                var k = pos
                while at(k) == A.space { k += 1 }
                if k - pos <= n || isDocumentMarker(at: pos) {
                    var j = k
                    while Self.isBlank(at(j)) { j += 1 }
                    if !Self.isBreak(at(j)), at(j) != A.hash { throw unterminatedFlow() }
                }
            } else if isEOF {
                throw unterminatedFlow()
            } else {
                return (breaks, comment)
            }
        }
    }

    private mutating func parseFlowNode(parent n: Int) throws(YAMLError) -> YAMLNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail(pos, "nesting is deeper than \(Self.maxDepth) levels") }
        let startLine = line
        switch cur {
        case A.lbracket: return try parseFlowSequence(parent: n)
        case A.lbrace: return try parseFlowMapping(parent: n)
        case A.quote, A.apos:
            let (text, style) = try readQuoted(parent: n)
            return .scalar(YAMLScalar(text, style: style, line: startLine))
        case A.pipe, A.gt:
            throw fail(pos, "block scalars ('|', '>') cannot be used inside a flow collection; use a quoted string")
        case A.dash where Self.isSeparator(at(pos + 1)):
            throw fail(pos, "a block sequence item '- ' cannot appear inside a flow collection")
        default:
            try checkNodeStart(flow: true)
            return .scalar(YAMLScalar(try readPlainFlow(parent: n), style: .plain, line: startLine))
        }
    }

    /// A plain scalar inside a flow collection; may continue on following lines.
    private mutating func readPlainFlow(parent n: Int) throws(YAMLError) -> String {
        var bytes = Array(b[readPlainSegment(flow: true)])
        while cur == A.lf {
            let saved = self
            let (breaks, comment) = try skipFlowSpace(parent: n)
            let ch = cur
            if comment || Self.isFlowIndicator(ch) || ch == A.hash
                || (ch == A.colon && (Self.isSeparator(at(pos + 1)) || Self.isFlowIndicator(at(pos + 1)))) {
                self = saved
                break
            }
            if breaks == 1 { bytes.append(A.space) } else { bytes += repeatElement(A.lf, count: breaks - 1) }
            bytes += b[readPlainSegment(flow: true)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func parseFlowSequence(parent n: Int) throws(YAMLError) -> YAMLNode {
        let outer = (flowOpen, flowOpenIsSequence)
        defer { (flowOpen, flowOpenIsSequence) = outer }
        (flowOpen, flowOpenIsSequence) = (pos, true)
        let openLine = line
        pos += 1
        var items: [YAMLNode] = []
        while true {
            try skipFlowSpace(parent: n)
            if cur == A.rbracket { pos += 1; return .sequence(items) }
            if cur == A.comma { throw fail(pos, "unexpected ',' in a flow sequence (empty entry)") }
            items.append(try parseFlowNode(parent: n))
            try skipFlowSpace(parent: n)
            if cur == A.colon, Self.isSeparator(at(pos + 1)) || Self.isFlowIndicator(at(pos + 1)) {
                throw fail(pos, "'key: value' pairs inside a flow sequence are not supported; write a flow mapping {key: value}")
            }
            if cur == A.comma { pos += 1; continue }
            if cur == A.rbracket { pos += 1; return .sequence(items) }
            throw fail(pos, "expected ',' or ']' in the flow sequence opened on line \(openLine), found \(character(at: pos))")
        }
    }

    private mutating func parseFlowMapping(parent n: Int) throws(YAMLError) -> YAMLNode {
        let outer = (flowOpen, flowOpenIsSequence)
        defer { (flowOpen, flowOpenIsSequence) = outer }
        (flowOpen, flowOpenIsSequence) = (pos, false)
        let openLine = line
        pos += 1
        var entries: [YAMLNode.Entry] = []
        var seen: [String: Int] = [:]
        while true {
            try skipFlowSpace(parent: n)
            if cur == A.rbrace { pos += 1; return .mapping(entries) }
            if cur == A.comma { throw fail(pos, "unexpected ',' in a flow mapping (empty entry)") }
            let keyPos = pos, keyLine = line
            let key: String
            if cur == A.quote || cur == A.apos {
                key = try readQuoted(parent: n).0
            } else {
                try checkNodeStart(flow: true)
                key = try readPlainFlow(parent: n)
            }
            try skipFlowSpace(parent: n)
            guard cur == A.colon else {
                var message = "expected ':' after mapping key '\(key)' in the flow mapping"
                if key.contains(":") { message += "; the ':' that ends a key must be followed by a space" }
                throw fail(keyPos, message)
            }
            if let first = seen[key] { throw fail(keyPos, "duplicate key '\(key)' (first defined on line \(first))") }
            seen[key] = keyLine
            pos += 1
            try skipFlowSpace(parent: n)
            let value: YAMLNode
            if cur == A.comma || cur == A.rbrace {
                value = .scalar(YAMLScalar("", style: .plain, line: keyLine))
            } else {
                value = try parseFlowNode(parent: n)
            }
            entries.append(YAMLNode.Entry(key: key, value: value, line: keyLine))
            try skipFlowSpace(parent: n)
            if cur == A.comma { pos += 1; continue }
            if cur == A.rbrace { pos += 1; return .mapping(entries) }
            throw fail(pos, "expected ',' or '}' in the flow mapping opened on line \(openLine), found \(character(at: pos))")
        }
    }
}
