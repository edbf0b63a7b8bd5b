#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import X509

/// When a client certificate should be renewed: at two thirds of its
/// lifetime (users 90 days, agents 30 days by default).
public enum CertificateRenewal {
    /// The point at 2/3 of the way from `notValidBefore` to `notValidAfter`.
    public static func renewalDate(of certificate: Certificate) -> Date {
        let start = certificate.notValidBefore
        let span = certificate.notValidAfter.timeIntervalSince(start)
        return start + span * 2 / 3
    }

    /// `true` once `now` has reached ``renewalDate(of:)``.
    public static func isDue(_ certificate: Certificate, now: Date) -> Bool {
        now >= renewalDate(of: certificate)
    }
}
