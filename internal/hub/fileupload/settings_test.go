package fileupload_test

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
)

func TestSettingsFromConnectionStrings(t *testing.T) {
	for _, tc := range []struct{ conn, host, service string }{
		{"DefaultEndpointsProtocol=https;AccountName=Acct;AccountKey=a2V5;EndpointSuffix=core.windows.net", "acct.blob.core.windows.net", "https://acct.blob.core.windows.net/"},
		{"accountname=a;accountkey=a2V5;endpointsuffix=outpost.localhost;", "a.blob.outpost.localhost", "https://a.blob.outpost.localhost/"},
		{"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;", "127.0.0.1:10000/devstoreaccount1", "https://127.0.0.1:10000/devstoreaccount1/"},
	} {
		s, err := fileupload.Interpret("h", hub.FileUploadSettings{ConnectionString: tc.conn, ContainerName: "c"})
		if err != nil {
			t.Fatalf("%s: %v", tc.conn, err)
		}
		if s.HostName() != tc.host || s.ServiceURL() != tc.service {
			t.Fatalf("%s: host %q service %q", tc.conn, s.HostName(), s.ServiceURL())
		}
	}
	for _, bad := range []string{"", "AccountName=a;AccountKey=a2V5", "AccountKey=a2V5;EndpointSuffix=x", "AccountName=a;EndpointSuffix=x", "garbage"} {
		if _, err := fileupload.Interpret("h", hub.FileUploadSettings{ConnectionString: bad, ContainerName: "c"}); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	// Identity-based settings need no key.
	if _, err := fileupload.Interpret("h", hub.FileUploadSettings{ConnectionString: "AccountName=a;EndpointSuffix=x", ContainerName: "c", AuthenticationType: "identityBased"}); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeFileUpload(t *testing.T) {
	f, err := hub.DecodeFileUpload([]byte(`{"storageEndpoints":{"$default":{"connectionString":"cs","containerName":"c","sasTtlAsIso8601":"PT2H","authenticationType":"identityBased","identity":{"userAssignedIdentity":"/x/uai"}}},
		"messagingEndpoints":{"fileNotifications":{"lockDurationAsIso8601":"PT5S","ttlAsIso8601":"PT2H","maxDeliveryCount":3}},"enableFileUploadNotifications":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.ConnectionString != "cs" || f.ContainerName != "c" || f.SASTTL.Hours() != 2 || f.AuthenticationType != "identityBased" ||
		f.UserAssignedIdentity != "/x/uai" || !f.Notifications || f.LockDuration.Seconds() != 5 || f.TTL.Hours() != 2 || f.MaxDeliveryCount != 3 {
		t.Fatalf("decoded %+v", f)
	}
}
