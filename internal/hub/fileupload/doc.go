// Package fileupload is IoT Hub file upload with the hub's own credentials:
// a device asks for a SAS URI, uploads straight to the storage account, and
// reports back; the hub then tells services through the file notification
// queue.
//
// The flow, as the device SDKs drive it (serviceapi adapts it to HTTP):
//
//  1. Start (POST /devices/{id}/files): ParseSettings reads the hub's
//     storageEndpoints.$default; the blob name is checked (no "..", no
//     leading '/', at most 1024 characters as {deviceId}/{blobName}); a SAS
//     for that one blob, sp=rw, https only, valid for sasTtl, is signed with
//     azblob's sas package — keyBased: a service SAS with the account key of
//     the connection string; identityBased: a user delegation SAS with a key
//     the hub's managed identity obtained (Get User Delegation Key), cached
//     per (account, identity) until it no longer outlives a new SAS. The
//     upload is recorded under a random correlation id in a JetStream
//     key-value bucket, one key per device, so the limit of 10 uploads in
//     progress is one compare-and-set and any node can complete it. hostName
//     is the blob endpoint without its scheme, path included, because
//     devices paste it verbatim into https://{hostName}/{container}/{blob}{sas}
//     (path-style endpoints such as 127.0.0.1:10000/devstoreaccount1 work).
//  2. The device uploads with the SAS; the hub is not involved.
//  3. Complete (POST /devices/{id}/files/notifications[/{correlationId}]):
//     the correlation id must name a live upload of that device. With
//     isSuccess and enableFileUploadNotifications the hub reads the blob's
//     properties with its own credentials (token or key, never the device's
//     SAS) and publishes {deviceId, blobUri, blobName, lastUpdatedTime,
//     blobSizeInBytes, enqueuedTimeUtc} to the hub's notification stream; only
//     after JetStream acknowledged it is the upload forgotten and 204 sent, so
//     nothing acknowledged is lost (a retried report may queue it twice).
//  4. Notifications: a work-queue stream per hub (EnsureHub/RemoveHub) with
//     one durable consumer, AckWait = lockDurationAsIso8601. Receive hands
//     out one notification under an unguessable lock token held in this
//     node's memory; Settle completes (acknowledged synchronously) or
//     abandons (redelivered at once). A lock that runs out is redelivered by
//     JetStream. TTL (ttlAsIso8601) is checked at delivery from
//     enqueuedTimeUtc. Dead-lettering: the consumer's MaxDeliver is
//     maxDeliveryCount+1, and the extra delivery never reaches a receiver —
//     the notification is terminated with a Warn log line. There is no DLQ
//     to read, as IoT Hub has none for file notifications.
//
// Check is the control plane's save-time test of the settings: the same
// credentials write and delete a probe blob, and a failure says exactly
// what is missing (a role, the container, network access, a key).
//
// Every hub→storage call goes through the egress client (SSRF rules) with
// azblob's pipeline on top of it.
package fileupload
