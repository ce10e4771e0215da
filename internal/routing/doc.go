// Package routing holds IoT Hub message routing: deciding, for every message
// a device sends, which endpoints receive it. The route condition language
// lives in the query subpackage; it is compiled once per route and evaluated
// once per message and route, so it is written to evaluate without
// allocating.
package routing
