import Testing
@testable import ToolSupport

/// The report renderer: strings escaped as RFC 8259 section 7 asks, numbers as each tool prints them.
struct JSONValueTests {
    @Test func quotesAndBackslashesAreEscaped() {
        #expect(JSONValue.string(#"say "hi""#).rendered(.spaced) == #""say \"hi\"""#)
        #expect(JSONValue.string(#"C:\dir\"#).rendered(.compact) == #""C:\\dir\\""#)
        #expect(JSONValue.string(#"\""#).rendered(.compact) == #""\\\"""#)
    }

    @Test func controlCharactersAreEscaped() {
        #expect(JSONValue.string("two\nlines").rendered(.compact) == #""two\nlines""#)
        #expect(JSONValue.string("tab\there").rendered(.compact) == #""tab\there""#)
        #expect(JSONValue.string("\u{0}\u{1}\u{1F}").rendered(.compact) == #""\u0000\u0001\u001f""#)
        #expect(JSONValue.string("\r").rendered(.compact) == #""\r""#)
    }

    @Test func everythingElseIsKeptAsItIs() {
        #expect(JSONValue.string("µs é 🙂 / ~ \u{7F}").rendered(.compact) == "\"µs é 🙂 / ~ \u{7F}\"")
        #expect(JSONValue.string("").rendered(.compact) == #""""#)
    }

    @Test func keysAreEscapedToo() {
        #expect(JSONValue.object([("a\"b", .null)]).rendered(.compact) == #"{"a\"b":null}"#)
    }

    @Test func numbersHaveAtMostThreeDecimalsAndNoPointWhenIntegral() {
        #expect(JSONValue.number(12).rendered(.compact) == "12")
        #expect(JSONValue.number(-3).rendered(.compact) == "-3")
        #expect(JSONValue.number(0.25).rendered(.compact) == "0.25")
        #expect(JSONValue.number(1577.98349).rendered(.compact) == "1577.983")
        #expect(JSONValue.number(0.0004).rendered(.compact) == "0.0", "rounds to zero but was not integral")
        #expect(JSONValue.number(.nan).rendered(.compact) == "null")
        #expect(JSONValue.number(-.infinity).rendered(.compact) == "null")
        #expect(JSONValue.format(99.9) == "99.9")
        #expect(JSONValue.format(50) == "50")
    }

    @Test func decimalsHaveExactlyTheirPlaces() {
        #expect(JSONValue.decimal(628.24, places: 1).rendered(.compact) == "628.2")
        #expect(JSONValue.decimal(0, places: 1).rendered(.compact) == "0.0")
        #expect(JSONValue.decimal(7, places: 1).rendered(.compact) == "7.0")
        #expect(JSONValue.decimal(0.46, places: 1).rendered(.compact) == "0.5")
        #expect(JSONValue.decimal(1.5, places: 3).rendered(.compact) == "1.500")
        #expect(JSONValue.decimal(2.6, places: 0).rendered(.compact) == "3")
        #expect(JSONValue.decimal(-1.25, places: 1).rendered(.compact) == "-1.3")
        #expect(JSONValue.decimal(-0.04, places: 1).rendered(.compact) == "0.0")
        #expect(JSONValue.decimal(.nan, places: 1).rendered(.compact) == "null")
        #expect(JSONValue.format(12.34, places: 1) == "12.3")
    }

    @Test func scalarsRenderAsJSON() {
        #expect(JSONValue.null.rendered(.spaced) == "null")
        #expect(JSONValue.bool(true).rendered(.spaced) == "true")
        #expect(JSONValue.bool(false).rendered(.spaced) == "false")
        #expect(JSONValue.int(-42).rendered(.spaced) == "-42")
    }

    @Test func objectsKeepTheirOrderInEitherLayout() {
        let value = JSONValue.object([
            ("z", .int(1)),
            ("a", .object([("x", .string("y")), ("n", .null)])),
            ("empty", .object([])),
        ])
        #expect(value.rendered(.spaced) == #"{"z": 1, "a": {"x": "y", "n": null}, "empty": {}}"#)
        #expect(value.rendered(.compact) == #"{"z":1,"a":{"x":"y","n":null},"empty":{}}"#)
    }
}
