// Package sqlfilter is the subset of Service Bus's SQL filter language that
// subscription rules use to pick messages: a small recursive-descent parser
// (Parse) and an evaluator (Filter.Match) over a message's user and system
// properties.
//
// Supported: comparisons (=, <>, !=, <, >, <=, >=) between property
// references and literals (strings in single quotes with ” as the escape,
// integers, decimals, TRUE, FALSE, NULL); AND, OR, NOT and parentheses; IN
// and NOT IN over literal lists; LIKE and NOT LIKE with % and _ and an
// optional ESCAPE character; IS NULL and IS NOT NULL; EXISTS(name).
// References are user properties ("color", "user.color", "[odd name]") or
// system properties ("sys.Label", "sys.MessageId", ...). Keywords and the
// "sys."/"user." qualifiers are case-insensitive.
//
// Evaluation is three-valued as in SQL: a missing property or a comparison of
// incompatible types is Unknown, NOT Unknown is Unknown, and a message matches
// only when the whole filter is True. Arithmetic, functions (newid(), ...)
// and rule actions (SET/REMOVE) are not supported; Parse says so by name.
package sqlfilter
