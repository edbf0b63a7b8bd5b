/// Why a decision of the ``DataCenter`` says no. Each case has a stable ``code`` (the API's
/// `error.code`) and a sentence for people (``description``).
public enum Refusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input is malformed (a bad name, amount, label or unknown pool); the code is the error's.
    case invalid(CoreError)
    /// The OPD's quota has too little left in one dimension.
    case quota(Shortfall)
    /// A quota lowering is below current use. In each shortfall `asked` is the current use and
    /// `left` the proposed quota; every dimension below use is listed.
    case quotaBelowUse([Shortfall])
    /// No host can take it.
    case placement(PlacementFailure)
    /// Something named does not exist; the text says what.
    case notFound(String)
    /// The change clashes with the current state (a name taken, a deleted volume); the text says how.
    case conflict(String)

    /// The stable code: the ``CoreError/Code`` raw value for ``invalid(_:)`` (`invalid_name`,
    /// `invalid_amount`, `invalid_label`, `unknown_pool`, …), else `quota_exceeded`,
    /// `quota_below_use`, `no_host_fits`, `not_found` or `conflict`.
    public var code: String {
        switch self {
        case .invalid(let error): error.code.rawValue
        case .quota: CoreError.Code.quotaExceeded.rawValue
        case .quotaBelowUse: CoreError.Code.quotaBelowUse.rawValue
        case .placement: CoreError.Code.noHostFits.rawValue
        case .notFound: "not_found"
        case .conflict: "conflict"
        }
    }

    /// A sentence for people, e.g. `quota: dinkes has 6 vCPU left, the request asks for 8 vCPU` or
    /// `lowering dinkes's vCPU quota to 10 is below its use of 14`.
    public var description: String {
        switch self {
        case .invalid(let error): error.message
        case .quota(let shortfall): shortfall.description
        case .quotaBelowUse(let shortfalls): shortfalls.map(Self.belowUseSentence).joined(separator: "; ")
        case .placement(let failure): failure.description
        case .notFound(let text), .conflict(let text): text
        }
    }

    static func belowUseSentence(_ s: Shortfall) -> String {
        let who: String
        switch s.scope {
        case .quota(let opd): who = "\(opd)'s"
        case .host(let host): who = "host \(host)'s"
        }
        return "lowering \(who) \(s.dimension.quotaNoun) to \(s.dimension.bareAmount(s.left)) is below its use of \(s.dimension.bareAmount(s.asked))"
    }
}
