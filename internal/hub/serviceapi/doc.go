// Package serviceapi is the hub's service-facing REST surface (the one the
// azure-iothub SDKs and az iot use): devices, modules, twins, registry
// statistics and queries, api-version 2021-04-12 and neighbours. A request
// reaches the hub its Host names, is authenticated with a shared access
// policy SAS token or an Entra bearer token, and is authorized by the
// policy's rights or by the IoT Hub data roles. Errors use IoT Hub's body:
// {"Message":"ErrorCode:<code>;<text>","ExceptionMessage":"Tracking ID:…"}.
package serviceapi
