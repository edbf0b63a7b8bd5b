import Foundation
import LumbungCore
import LumbungStore
import Testing

/// Migration v3: an OPD's quota class and a request's rule, letter, levels and approvals.
@Suite("Approval and class columns (v3)")
struct ApprovalColumnsTests {
    @Test("class, rule, letter, levels and approvals survive commit and loadState; a class change is its own change")
    func roundTrip() async throws {
        try await withStore { store, _ in
            var opd = makeOPD()
            opd.quotaClass = "sedang"
            var request = makeRequest(1)
            request.rule = "vm-volume-besar"
            request.letter = "800/123/Diskominfo/2026"
            request.levels = [.approver, .admin]
            request.approvals = [RequestApproval(level: .approver, by: "user:ani", at: at(4), override: nil, reason: "ok")]
            try await store.commit([.opdCreated(opd), .requestFiled(request)], audit: [])
            var state = try store.loadState()
            #expect(state.opds == [opd])
            #expect(state.requests == [request])
            #expect(state.requests.first?.remainingLevels == [.admin])

            try await store.commit([.opdClassChanged("dinkes", nil)], audit: [])
            state = try store.loadState()
            #expect(state.opds.first?.quotaClass == nil)
            let missing = await storeError { try await store.commit([.opdClassChanged("nope", "besar")], audit: []) }
            #expect(missing?.code == .notFound)
        }
    }

    @Test("an empty letter or class is refused by CHECK constraints")
    func checks() async throws {
        try await withStore { store, _ in
            var opd = makeOPD()
            opd.quotaClass = ""
            var error = await storeError { try await store.commit([.opdCreated(opd)], audit: []) }
            #expect(error?.code == .constraint)
            try await store.commit([.opdCreated(makeOPD())], audit: [])
            var request = makeRequest(1)
            request.letter = ""
            error = await storeError { try await store.commit([.requestFiled(request)], audit: []) }
            #expect(error?.code == .constraint)
            #expect(try store.loadState().requests.isEmpty)
        }
    }

    @Test("a request filed before v3 needs the approver for a VM and an admin for quota")
    func legacyLevels() {
        #expect(makeRequest(1).remainingLevels == [.approver])
        #expect(makeRequest(2, payload: .quota(ResourceVector(vcpu: 1))).remainingLevels == [.admin])
    }
}
