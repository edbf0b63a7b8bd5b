import Foundation
import LumbungController
import Testing
import Yams

@Suite("openapi.yaml describes exactly the routes the controller serves")
struct OpenAPITests {
    @Test("every route is documented and every documented route exists")
    func inSync() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        guard let doc = try Yams.load(yaml: text) as? [String: Any], let paths = doc["paths"] as? [String: Any] else {
            Issue.record("openapi.yaml has no paths")
            return
        }
        var documented = Set<String>()
        for (path, item) in paths {
            guard let ops = item as? [String: Any] else { continue }
            for method in ops.keys where ["get", "post", "put", "delete", "patch"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        let ctl = try await TestController.start()
        let served = Set(ctl.assembly.routes)
        await ctl.stop()
        let undocumented = served.subtracting(documented).sorted()
        let missing = documented.subtracting(served).sorted()
        #expect(undocumented.isEmpty, "served but not in openapi.yaml: \(undocumented)")
        #expect(missing.isEmpty, "in openapi.yaml but not served: \(missing)")
        #expect(served.count > 30)
    }
}
