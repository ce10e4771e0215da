// Package routetest serves IoT Hub's route test APIs — POST
// {hub}/routing/routes/$testall and $testnew — as the
// Microsoft.Devices/IotHubs/routing ARM type: a sample message (body,
// application and system properties) and twin are evaluated against the
// hub's stored routes, or against one route given in the body, with the
// routing query language. No message is sent.
package routetest
