// Package jobs runs IoT Hub bulk import/export jobs: the service API's
// POST /jobs/create, GET /jobs[/{id}], DELETE /jobs/{id} and the ARM
// exportDevices/importDevices actions are thin adapters over Runner.
//
// The flow:
//
//  1. Create validates the request (type and storageAuthenticationType in
//     any spelling SDKs send; a SAS required on key-based URIs) and stores
//     the job "queued" in a JetStream key-value bucket, so every node sees
//     every job. "{hub}.active" is created with the job (compare-and-set):
//     a hub runs one job at a time, as IoT Hub does (JobQuotaExceeded).
//  2. Run (owned by the app's run group) claims queued jobs with
//     compare-and-set and executes each in a goroutine it waits for.
//  3. Credentials follow the seed's rules: keyBased uses the SAS in each
//     URI; identityBased uses identity.userAssignedIdentity, which must be
//     on the hub, or else the hub's system-assigned identity, which must
//     exist. Every refusal is a failureReason naming the identity, the role
//     to grant and the container.
//  4. Every container URI is checked by the egress client before a token is
//     minted or a request sent, and all storage traffic goes through it as
//     azblob's transport: https only, no redirects, no loopback, link-local
//     or private addresses.
//  5. Import streams devices.txt line by line, applies lines in batches of
//     Config.BatchSize through store.Devices.PutMany (one transaction each),
//     with the registry's own rules (registry.PrepareImport, ApplyImport),
//     and collects refused lines for importErrors.log in the output
//     container. Before a batch the job records the batch's last line as
//     "in flight", after it the checkpoint; progress is the share of the
//     blob read.
//  6. Export streams the registry page by page into a block blob that is
//     committed only at the end: a failed export leaves no partial file.
//  7. Cancel marks a queued job cancelled at once, and asks a running one
//     to stop at its next batch boundary (the local context is cancelled at
//     once; another node sees the flag on its heartbeat). A running job
//     whose heartbeat is older than StaleAfter lost its node (kill -9): the
//     next sweep marks it failed with exactly what the registry holds —
//     lines 1–N applied, and which lines may or may not be.
package jobs
