package hubresource

// apiVersions are the Microsoft.Devices/IotHubs api-versions Outpost
// accepts, newest first. The same table feeds the provider metadata (az
// resource show picks the newest non-preview entry from it) and the
// provider actions. Clients in the wild: 2021-03-31 (the seed templates and
// the IoT Hub managed-identity docs), 2021-07-02 and 2022-04-30-preview
// (az 2.45), 2023-06-30 (armiothub v1.3.0). The rest are the other versions
// published in Azure/azure-rest-api-specs
// specification/iothub/resource-manager/Microsoft.Devices since 2018-04-01;
// every one of them shares the IotHubDescription shape served here.
var apiVersions = []string{
	"2026-08-01-preview", "2026-05-01-preview", "2026-03-01-preview", "2025-08-01-preview",
	"2023-06-30", "2023-06-30-preview", "2022-11-15-preview", "2022-04-30-preview",
	"2021-07-02", "2021-07-02-preview", "2021-07-01", "2021-07-01-preview",
	"2021-03-31", "2021-03-03-preview", "2021-02-01-preview",
	"2020-08-31", "2020-08-31-preview", "2020-08-01", "2020-07-10-preview",
	"2020-06-15", "2020-04-01", "2020-03-01", "2019-11-04", "2019-07-01-preview",
	"2019-03-22", "2019-03-22-preview", "2018-12-01-preview", "2018-04-01",
}

// APIVersions returns the api-versions of Microsoft.Devices/IotHubs, newest first.
func APIVersions() []string { return append([]string(nil), apiVersions...) }
