import Foundation
import LumbungAPI
import LumbungCore
import Testing

/// `StrictJSON.decodeStrict` (every request body goes through it): valid JSON only, no unknown
/// fields at any depth, `null` for an absent optional accepted.
@Suite("Strict JSON bodies")
struct StrictJSONTests {
    static func decode(_ text: String) -> Result<CreateVMBody, StrictJSONError> {
        Result { () throws(StrictJSONError) -> CreateVMBody in try StrictJSON.decodeStrict(CreateVMBody.self, from: Data(text.utf8)) }
    }

    static let vm = #""vm":{"name":"a","vcpu":1,"memory":1073741824,"disk":1073741824,"pool":"ssd""#

    @Test("a valid body decodes; null for an optional field and spaces are fine")
    func valid() throws {
        let body = try Self.decode(#" { "opd" : "dinkes", "# + Self.vm + #","app":null,"requireLabels":{"zone":"a"}}, "force": null } "#).get()
        #expect(body.opd == "dinkes")
        #expect(body.vm.requireLabels == ["zone": "a"])
        #expect(body.force == nil)
        let escaped = try Self.decode(#"{"opd":"din\u006bes","# + Self.vm + #","tags":{"k\"\\\/\n":"\ud83d\ude00"}}}"#).get()
        #expect(escaped.opd == "dinkes")
        #expect(escaped.vm.tags == ["k\"\\/\n": "😀"])
    }

    @Test("the direct path for POST /v1/vms bodies gives what JSONDecoder gives")
    func direct() throws {
        for text in [
            #"{"opd":"dinkes","# + Self.vm + "}}",
            #"{"force":true,"opd":"dinkes","# + Self.vm + #","app":"web","image":"debian-12","requireLabels":{"zone":"a","x":""},"forbidLabels":{},"tags":{"data":"pribadi"}}}"#,
            #"{"opd":"dinkes","force":false,"vm":{"name":"b","vcpu":64,"memory":-5,"disk":0,"pool":null,"app":null,"tags":null,"x":null},"y":null}"#,
        ] {
            let strict = try Self.decode(text).get()
            let plain = try StrictJSON.decoder().decode(CreateVMBody.self, from: Data(text.utf8))
            #expect(strict == plain, "\(text)")
        }
        // Unusual but valid for the decoder: a fractional number is refused by it, as before.
        #expect((try? Self.decode(#"{"opd":"dinkes","vm":{"name":"a","vcpu":1.5,"memory":1,"disk":1}}"#).get()) == nil)
        #expect((try? Self.decode(#"{"opd":null,"# + Self.vm + "}}").get()) == nil)
        #expect((try? Self.decode(#"{"opd":"dinkes","vm":{"name":"a","vcpu":1,"memory":1,"disk":1,"requireLabels":{"a":1}}}"#).get()) == nil)
    }

    @Test("unknown fields are named, at any depth")
    func unknown() {
        for (text, path) in [
            (#"{"opd":"dinkes","# + Self.vm + #"},"colour":"red"}"#, "colour"),
            (#"{"opd":"dinkes","# + Self.vm + #","gpu":1}}"#, "vm.gpu"),
            (#"{"opd":"dinkes","# + Self.vm + #","gpu":{"x":[1,2]}}}"#, "vm.gpu"),
        ] {
            guard case .failure(let error) = Self.decode(text) else {
                Issue.record("accepted \(text)")
                continue
            }
            #expect(error.message.hasPrefix("unknown field '\(path)'"), "\(text): \(error.message)")
        }
    }

    @Test("text that is not JSON is refused as such")
    func notJSON() {
        let valid = #"{"opd":"dinkes","# + Self.vm + "}}"
        #expect((try? Self.decode(valid).get()) != nil)
        for text in [
            "", "hello", "{", valid + "}", valid + " x", #"{"opd":"dinkes","# + Self.vm + "},}",
            #"{'opd':"dinkes"}"#, #"{"opd":"din"# + "\u{01}" + #"kes"}"#, #"{"opd":"\x"}"#, #"{"opd":"\ud83d"}"#,
            #"{"a":01}"#, #"{"a":1.}"#, #"{"a":-}"#, #"{"a":1e}"#, #"{"a":tru}"#, #"{"a" 1}"#, "[1,2", #"{"a":[1,]}"#,
        ] {
            guard case .failure(let error) = Self.decode(text) else {
                Issue.record("accepted \(text)")
                continue
            }
            #expect(error.message == "the body is not valid JSON", "\(text): \(error.message)")
        }
    }
}
