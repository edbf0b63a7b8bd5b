/// A parsed YAML value: a scalar, a mapping (keys in document order) or a sequence.
///
/// Equality and hashing compare content only (keys, texts and scalar styles);
/// source line numbers are metadata and are ignored.
public indirect enum YAMLNode: Sendable, Hashable {
    /// One `key: value` pair of a mapping.
    public struct Entry: Sendable, Hashable {
        /// The key text (keys are always plain or quoted scalars).
        public var key: String
        /// The value the key maps to.
        public var value: YAMLNode
        /// 1-based source line of the key; 0 when the entry was built in code. Ignored by `==`.
        public var line: Int

        /// Creates an entry; `line` is only used to point errors at the source.
        public init(key: String, value: YAMLNode, line: Int = 0) {
            self.key = key
            self.value = value
            self.line = line
        }

        /// Compares key and value, ignoring the line.
        public static func == (lhs: Entry, rhs: Entry) -> Bool {
            lhs.key == rhs.key && lhs.value == rhs.value
        }

        /// Hashes key and value, ignoring the line.
        public func hash(into hasher: inout Hasher) {
            hasher.combine(key)
            hasher.combine(value)
        }
    }

    /// A scalar value (its text is never interpreted by the parser).
    case scalar(YAMLScalar)
    /// A mapping, entries in document order.
    case mapping([Entry])
    /// A sequence, items in document order.
    case sequence([YAMLNode])

    /// The scalar, if this node is one.
    public var scalar: YAMLScalar? {
        if case .scalar(let s) = self { return s }
        return nil
    }

    /// The scalar text, if this node is a scalar.
    public var text: String? { scalar?.text }

    /// The value stored under `key`, if this node is a mapping that has it.
    public subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The item at `index`, if this node is a sequence that long.
    public subscript(index: Int) -> YAMLNode? {
        guard case .sequence(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// The 1-based line where the node starts: a scalar's own line, a collection's
    /// first key or item line; nil for empty collections and nodes built in code.
    public var line: Int? {
        switch self {
        case .scalar(let s): return s.line > 0 ? s.line : nil
        case .mapping(let entries): return entries.first.flatMap { $0.line > 0 ? $0.line : $0.value.line }
        case .sequence(let items): return items.first?.line
        }
    }

    /// Parses one YAML document written in the supported subset (see README.md).
    ///
    /// - Returns: the root node, or `nil` when the document is empty (only
    ///   comments, blank lines and document markers).
    /// - Throws: `YAMLError` with the line and column of the first problem,
    ///   including every unsupported feature (anchors, aliases, tags, ...).
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var parser = YAMLParser(text)
        return try parser.parseDocument()
    }
}

/// A scalar as written in the source: its text (after unquoting, escape
/// processing and folding), how it was written, and where.
public struct YAMLScalar: Sendable, Hashable {
    /// How a scalar was written in the source.
    public enum Style: Sendable, Hashable {
        /// Unquoted; the only style whose text may resolve to null, bool or a number.
        case plain
        /// `'...'`
        case singleQuoted
        /// `"..."`
        case doubleQuoted
        /// `|` block scalar.
        case literal
        /// `>` block scalar.
        case folded
    }

    /// The scalar's content.
    public var text: String
    /// How the scalar was written.
    public var style: Style
    /// 1-based source line where the scalar starts (0 when built in code). Ignored by `==`.
    public var line: Int

    /// Creates a scalar.
    public init(_ text: String, style: Style = .plain, line: Int = 0) {
        self.text = text
        self.style = style
        self.line = line
    }

    /// True for plain `null`, `Null`, `NULL`, `~` and the empty plain scalar (YAML 1.2 core schema).
    public var isNull: Bool { style == .plain && CoreSchema.isNull(text) }

    /// Compares text and style, ignoring the line.
    public static func == (lhs: YAMLScalar, rhs: YAMLScalar) -> Bool {
        lhs.text == rhs.text && lhs.style == rhs.style
    }

    /// Hashes text and style, ignoring the line.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(text)
        hasher.combine(style)
    }
}

/// A syntax error, or use of a YAML feature outside the supported subset.
public struct YAMLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// 1-based line of the problem.
    public let line: Int
    /// 1-based column (in characters) of the problem.
    public let column: Int
    /// What was found and what is supported instead.
    public let message: String

    /// Creates an error.
    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line L, column C: message`.
    public var description: String { "line \(line), column \(column): \(message)" }
}
