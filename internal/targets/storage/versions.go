package storage

// apiVersions are the Microsoft.Storage api-versions accepted, newest first:
// the stable versions published in Azure/azure-rest-api-specs
// specification/storage/resource-manager/Microsoft.Storage that share the
// StorageAccount / BlobContainer shape served here. Clients in the wild:
// 2023-05-01 (armstorage v1.6+), 2023-01-01 and 2022-09-01 (az 2.4x/2.5x),
// 2021-09-01 and 2021-04-01 (older templates), 2019-06-01 (the IoT Hub docs'
// templates).
var apiVersions = []string{
	"2025-06-01", "2025-01-01", "2024-01-01", "2023-05-01", "2023-04-01", "2023-01-01",
	"2022-09-01", "2022-05-01", "2021-09-01", "2021-08-01", "2021-06-01", "2021-04-01",
	"2021-02-01", "2021-01-01", "2020-08-01-preview", "2019-06-01", "2019-04-01",
	"2018-11-01", "2018-07-01", "2018-02-01",
}

// APIVersions returns the accepted api-versions, newest first.
func APIVersions() []string { return append([]string(nil), apiVersions...) }
