// Package query compiles and evaluates IoT Hub message routing conditions,
// such as
//
//	$connectionDeviceId = 'thermostat-7' AND as_number(temperature) > 30
//	    AND $body.Weather.Humidity < 40 AND $twin.tags.site = 'Berlin'
//
// A route's condition is compiled once (Compile) and evaluated for every
// message (Condition.Eval). The reference is IoT Edge's routing engine,
// Azure/iotedge edge-hub/core/src/Microsoft.Azure.Devices.Routing.Core,
// which its tests say was ported from IoT Hub (grammar/Condition.g4,
// query/ConditionVisitor.cs, query/builtins, and their tests), read together
// with the MicrosoftDocs articles iot-hub-devguide-routing-query-syntax.md
// and iot-hub-devguide-query-language.md.
//
// # Pipeline
//
// lexer.go reproduces GrammarLexer.g4 rule by rule, including ANTLR's
// choice of the longest match and, on a tie, the earliest rule. The
// language depends on it: "x-1" and "a.b" are property names, "3" is a
// number, "true" is a keyword and "TRUE" a property.
//
// parser.go builds a syntax tree by precedence climbing with Condition.g4's
// precedence (unary - and NOT, then * / %, + - ||, < <= > >=, = != <>, AND,
// OR, ??) and stops at the first syntax error.
//
// check.go is IoT Hub's type system. Properties are strings, literals have
// their own type and only $body and $twin values are dynamic, so
// "temperature > 30" on an application property is a compile error with a
// hint to write as_number(temperature) > 30, as IoT Hub rejects it too. The
// checker reports every type error and emits a typed evaluation tree.
//
// eval.go walks that tree. Values are small structs passed by value; AND,
// OR and NOT are three-valued (Kleene) and short-circuit, so a false left
// side spares parsing the body; the result is True, False or Undefined and
// only True routes.
//
// # Messages and Input
//
// Message is an interface, not a struct of maps, so that the routing
// engine's own message type serves conditions directly: no maps are built
// per message, and lookups are whatever the engine stores. MessageData is a
// map-backed implementation for tests and the route test API.
//
// Input is the per-message evaluation context a routing worker reuses for
// every message and every route. It fetches and parses the body and the
// twin on first use, at most once per message however many routes ask, into
// a tape that later lookups walk (json.go), and keeps its buffers between
// messages. Strings that functions build (LOWER, CONCAT, ...) go into an
// arena in the Input, reset by each Eval. Together these make evaluation
// allocation-free: properties always, bodies and twins once the Input's
// buffers have grown. The invariant that makes this safe is in text.go.
//
// # Semantics and where they come from
//
// Application property names match case-insensitively; values compare
// ordinally by UTF-16 units, as .NET does. $name reads the system property
// (routing keywords such as $contentType, $connectionDeviceId,
// $enqueuedTime, matched in any case) and then the application property
// "$name", the order IoT Hub documents; {$name} reads only the system
// property. $body.<path> is queried only when contentType is
// application/json and contentEncoding is UTF-8, UTF-16 or UTF-32;
// otherwise, for invalid JSON and for a missing path it is undefined.
// Body paths are case-sensitive, twin paths are not.
//
// Where IoT Edge and IoT Hub's documentation disagree, or IoT Edge has a
// plain bug, this package follows the documentation:
//
//   - $name prefers the system property; IoT Edge prefers an application
//     property named "$name". $body.x always reads the body.
//   - A missing $body path is undefined (is_defined is the documented
//     presence test); IoT Edge returns null.
//   - A string that looks like an ISO 8601 date is a string; IoT Edge's
//     Json.NET turns it into a date, which reads as undefined.
//   - $twin works (IoT Edge has none); IS_OBJECT, IS_ARRAY and
//     IS_PRIMITIVE are documented but missing in IoT Edge. Objects and
//     arrays are seen by these and IS_DEFINED; comparisons with them are
//     undefined.
//   - Type checks are total: IS_NULL(x) is false for a missing x and true
//     only for null (IoT Edge inverts it for body values).
//   - AND and OR accept a $body value on either side (IoT Edge rejects
//     true AND $body.flag) and treat non-Booleans as undefined.
//   - Text after a complete condition ("a = 'x' b = 'y'") is an error;
//     IoT Edge's parser ignores it.
//
// Unchanged from IoT Edge: || concatenates strings and ?? picks the first
// defined value; SELECT, FROM, WHERE and INTO are reserved; the null
// literal follows IoT Edge's rules (NOT null is true, null AND x is null,
// null OR x is x); AS_NUMBER parses like .NET's double.TryParse with
// NumberStyles.Any; 3/0 is infinite but 3 % 0 undefined; a content type
// with parameters (application/json; charset=utf-8) does not make a body
// queryable; bodies nest at most 64 deep. Bodies must be strict JSON,
// optionally after a byte order mark; Json.NET would also accept comments
// and single quotes. The empty condition is Undefined; the ARM layer, not
// this package, turns an absent condition into true. There are no trim,
// logarithm or date functions: IoT Hub documents none.
package query
