// Blob storage data plane through the real @azure/storage-blob client. The
// same file judges any blob endpoint: it is validated against Azurite (the
// reference emulator) and run against Outpost's blob service side by side.
// Configured only by environment variables (see lib/blob.mjs):
//
//   BLOB_ENDPOINT, BLOB_AUTH (sharedkey | sas | bearer), BLOB_ACCOUNT and
//   BLOB_KEY (sharedkey, sas), AZURE_TENANT_ID, AZURE_CLIENT_ID,
//   AZURE_CLIENT_SECRET and AZURE_AUTHORITY_HOST (bearer), BLOB_PEER
//   (optional), NODE_EXTRA_CA_CERTS (read by Node).
//
// Driven by the Go end-to-end tests (TestAzuriteBlobSuite):
// `node --test storage-blob.test.mjs`. Expectations follow real Azure
// Storage. Where Azurite differs (only BAD_SIGNATURE_CODE below), the
// comment says so and BLOB_PEER=azurite expects Azurite's answer instead.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  accountSas,
  blobConfig,
  containerClientWithSas,
  containerSas,
  randomKey,
  serviceClient,
  serviceClientWithSas,
  serviceClientWithWrongKey,
} from "./lib/blob.mjs";
import { uniqueName } from "./lib/env.mjs";

// Read first so a run without the Go driver fails here, with the message
// saying which variable is missing.
const config = blobConfig();
const service = serviceClient(config);

const KiB = 1024;
const MiB = 1024 * KiB;

// Every container this run creates, deleted at the end whatever happened.
const containers = new Set();

after(async () => {
  for (const name of containers) {
    await service
      .getContainerClient(name)
      .deleteIfExists()
      .catch(() => {});
  }
});

/** Creates a container with a name no other run uses and returns its client. */
async function newContainer(tag) {
  const name = uniqueName(`blob-${tag}`);
  const container = service.getContainerClient(name);
  containers.add(name);
  await container.create();
  return container;
}

/**
 * Asserts that promise rejects with a RestError of this HTTP status and
 * storage error code. The service sends the code in the x-ms-error-code
 * header and, except for HEAD (no body), as <Error><Code> in the body; the SDK
 * surfaces the body's code as err.code.
 */
async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, "RestError", `a RestError (got ${err.name}: ${err.message})`);
    assert.equal(err.statusCode, statusCode, `statusCode (error: ${err.message})`);
    assert.equal(err.response?.headers.get("x-ms-error-code"), code, `x-ms-error-code header (error: ${err.message})`);
    if (err.response?.request.method !== "HEAD") {
      assert.equal(err.code, code, `error code in the body (error: ${err.message})`);
    }
    return true;
  });
}

// The error code of a request whose shared key or SAS signature does not
// verify. Real Azure answers 403 AuthenticationFailed (with an
// AuthenticationErrorDetail such as "The MAC signature found in the HTTP
// request ... is not the same as any computed signature" or "Signature did
// not match"). Azurite 3.35 answers 403 AuthorizationFailure instead: its
// authentication middleware throws that when no authenticator accepts the
// request. BLOB_PEER=azurite expects Azurite's code; the status is checked
// either way.
const BAD_SIGNATURE_CODE = config.peer === "azurite" ? "AuthorizationFailure" : "AuthenticationFailed";

/** Reads a Node readable stream into one Buffer. */
async function readAll(stream) {
  assert.ok(stream, "the download has a body stream");
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Hashes a Node readable stream without holding it whole: { md5, sha256, length }. */
async function hashStream(stream) {
  assert.ok(stream, "the download has a body stream");
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  let length = 0;
  for await (const chunk of stream) {
    md5.update(chunk);
    sha256.update(chunk);
    length += chunk.length;
  }
  return { md5: md5.digest("hex"), sha256: sha256.digest("hex"), length };
}

/** Collects a paged iterator into an array. */
async function collect(iter) {
  const items = [];
  for await (const item of iter) items.push(item);
  return items;
}

/** A block id: base64 of a fixed-width string, so all ids of a blob have the same length. */
function blockId(n) {
  return Buffer.from(`block-${String(n).padStart(6, "0")}`).toString("base64");
}

describe(`blob service (${config.auth} auth, @azure/storage-blob)`, () => {
  it("creates a container, and a second create is 409 ContainerAlreadyExists", async () => {
    const name = uniqueName("blob-create");
    const container = service.getContainerClient(name);
    containers.add(name);
    const res = await container.create();
    assert.equal(res._response.status, 201, "Create Container answers 201 Created");
    assert.ok(res.etag, "ETag");
    assert.ok(res.lastModified instanceof Date, "Last-Modified");
    assert.ok(res.requestId, "x-ms-request-id");
    assert.ok(res.version, "x-ms-version");
    assert.equal(await container.exists(), true, "the container exists");
    await rejectsWith(container.create(), 409, "ContainerAlreadyExists");
  });

  it("uploads a 1 KiB blob with metadata and content type", async () => {
    const container = await newContainer("small");
    const blob = container.getBlockBlobClient("dir/small.bin");
    const data = randomBytes(KiB);
    const res = await blob.upload(data, data.length, {
      metadata: { origin: "outpost", case: "small" },
      blobHTTPHeaders: { blobContentType: "application/x-outpost-test" },
    });
    assert.equal(res._response.status, 201, "Put Blob answers 201 Created");
    assert.ok(res.etag, "ETag");
    assert.ok(res.lastModified instanceof Date, "Last-Modified");
    // Put Blob returns the MD5 the service computed over the body.
    assert.equal(
      Buffer.from(res.contentMD5 ?? []).toString("hex"),
      createHash("md5").update(data).digest("hex"),
      "Content-MD5 of the body",
    );
    const got = await readAll((await blob.download()).readableStreamBody);
    assert.ok(got.equals(data), "the download returns the uploaded bytes");
  });

  it("gets blob properties: length, content type, metadata, BlockBlob", async () => {
    const container = await newContainer("props");
    const blob = container.getBlockBlobClient("props.bin");
    const data = randomBytes(KiB);
    const metadata = { origin: "outpost", case: "props" };
    const uploaded = await blob.upload(data, data.length, {
      metadata,
      blobHTTPHeaders: { blobContentType: "text/plain; charset=utf-8" },
    });
    const props = await blob.getProperties();
    assert.equal(props.contentLength, KiB, "contentLength");
    assert.equal(props.contentType, "text/plain; charset=utf-8", "contentType");
    assert.deepEqual(props.metadata, metadata, "metadata");
    assert.equal(props.blobType, "BlockBlob", "blobType");
    assert.equal(props.etag, uploaded.etag, "the ETag of the upload");
    assert.ok(props.lastModified instanceof Date, "lastModified");
  });

  it("uploads 64 MiB in 4 MiB blocks (Put Block + Put Block List) and downloads it intact", async () => {
    const container = await newContainer("large");
    const blob = container.getBlockBlobClient("large.bin");
    const size = 64 * MiB;
    const blockSize = 4 * MiB;
    const data = randomBytes(size);
    const md5 = createHash("md5").update(data).digest();
    const sha256 = createHash("sha256").update(data).digest("hex");
    await blob.uploadData(data, {
      blockSize,
      // Below the data's size, so uploadData stages blocks instead of one Put Blob.
      maxSingleShotSize: blockSize,
      concurrency: 4,
      // Put Block List stores x-ms-blob-content-md5 as the blob's Content-MD5.
      blobHTTPHeaders: { blobContentType: "application/octet-stream", blobContentMD5: md5 },
    });

    const list = await blob.getBlockList("committed");
    assert.equal(list.committedBlocks?.length, size / blockSize, "committed blocks");
    for (const block of list.committedBlocks) assert.equal(block.size, blockSize, `size of block ${block.name}`);
    assert.equal(list.blobContentLength, size, "x-ms-blob-content-length of the block list");

    const props = await blob.getProperties();
    assert.equal(props.contentLength, size, "contentLength");
    assert.equal(Buffer.from(props.contentMD5 ?? []).toString("hex"), md5.toString("hex"), "Content-MD5");

    const res = await blob.download();
    assert.equal(res.contentLength, size, "Content-Length of the download");
    const got = await hashStream(res.readableStreamBody);
    assert.equal(got.length, size, "bytes downloaded");
    assert.equal(got.md5, md5.toString("hex"), "MD5 of the download");
    assert.equal(got.sha256, sha256, "SHA-256 of the download");
  });

  it("lists blobs flat by prefix, two per page", async () => {
    const container = await newContainer("list");
    const names = ["logs/a.txt", "logs/b.txt", "logs/c/d.txt", "logs/e.txt", "logs/f.txt"];
    for (const name of [...names, "other/x.txt", "logs.txt"]) {
      await container.getBlockBlobClient(name).upload(name, Buffer.byteLength(name));
    }
    const pages = await collect(container.listBlobsFlat({ prefix: "logs/" }).byPage({ maxPageSize: 2 }));
    const seen = [];
    for (const [i, page] of pages.entries()) {
      const items = page.segment.blobItems;
      assert.ok(items.length <= 2, `page ${i} holds at most 2 blobs (got ${items.length})`);
      assert.equal(page.prefix, "logs/", `page ${i} echoes the prefix`);
      for (const item of items) {
        seen.push(item.name);
        assert.equal(item.properties.contentLength, Buffer.byteLength(item.name), `length of ${item.name}`);
        assert.equal(item.properties.blobType, "BlockBlob", `type of ${item.name}`);
      }
    }
    assert.ok(pages.length >= 3, `5 blobs at 2 a page take at least 3 pages (got ${pages.length})`);
    assert.ok(!pages.at(-1).continuationToken, "the last page has no continuation token");
    // Blob listings are in lexicographic order, each name once.
    assert.deepEqual(seen, [...names].sort(), "every blob under the prefix exactly once, in order");
  });

  it("lists blobs by hierarchy with delimiter /", async () => {
    const container = await newContainer("tree");
    for (const name of ["a.txt", "dir1/x.txt", "dir1/y.txt", "dir2/sub/z.txt", "dir2/w.txt", "b.txt"]) {
      await container.getBlockBlobClient(name).upload(name, Buffer.byteLength(name));
    }
    const top = await collect(container.listBlobsByHierarchy("/"));
    assert.deepEqual(
      top.filter((i) => i.kind === "prefix").map((i) => i.name),
      ["dir1/", "dir2/"],
      "BlobPrefix items at the top",
    );
    assert.deepEqual(
      top.filter((i) => i.kind === "blob").map((i) => i.name),
      ["a.txt", "b.txt"],
      "Blob items at the top",
    );

    const dir2 = await collect(container.listBlobsByHierarchy("/", { prefix: "dir2/" }));
    assert.deepEqual(
      dir2.map((i) => `${i.kind}:${i.name}`).sort(),
      ["blob:dir2/w.txt", "prefix:dir2/sub/"],
      "one level under dir2/",
    );

    // Paged: prefixes and blobs share maxresults, every entry comes back once.
    const pages = await collect(container.listBlobsByHierarchy("/").byPage({ maxPageSize: 1 }));
    const entries = pages.flatMap((p) => [
      ...(p.segment.blobPrefixes ?? []).map((x) => `prefix:${x.name}`),
      ...p.segment.blobItems.map((x) => `blob:${x.name}`),
    ]);
    assert.deepEqual(entries.sort(), ["blob:a.txt", "blob:b.txt", "prefix:dir1/", "prefix:dir2/"], "paged hierarchy");
  });

  it("downloads a range (offset, count) as exactly those bytes", async () => {
    const container = await newContainer("range");
    const blob = container.getBlockBlobClient("range.bin");
    const data = randomBytes(KiB);
    await blob.upload(data, data.length);
    const res = await blob.download(100, 50);
    assert.equal(res._response.status, 206, "a ranged Get Blob answers 206 Partial Content");
    assert.equal(res.contentLength, 50, "Content-Length");
    assert.equal(res.contentRange, "bytes 100-149/1024", "Content-Range");
    const got = await readAll(res.readableStreamBody);
    assert.ok(got.equals(data.subarray(100, 150)), "bytes 100..149");

    // An open-ended range: from offset to the end.
    const tail = await readAll((await blob.download(1000)).readableStreamBody);
    assert.ok(tail.equals(data.subarray(1000)), "bytes 1000..end");
  });

  it("creates an append blob and appends two blocks", async () => {
    const container = await newContainer("append");
    const blob = container.getAppendBlobClient("log.txt");
    await blob.create({ blobHTTPHeaders: { blobContentType: "text/plain" } });
    const first = Buffer.from("first line\n");
    const second = Buffer.from("second line\n");
    const r1 = await blob.appendBlock(first, first.length);
    assert.equal(r1.blobAppendOffset, "0", "the first block lands at offset 0");
    assert.equal(r1.blobCommittedBlockCount, 1, "one committed block");
    const r2 = await blob.appendBlock(second, second.length);
    assert.equal(r2.blobAppendOffset, String(first.length), "the second block lands after the first");
    assert.equal(r2.blobCommittedBlockCount, 2, "two committed blocks");

    const props = await blob.getProperties();
    assert.equal(props.blobType, "AppendBlob", "blobType");
    assert.equal(props.contentLength, first.length + second.length, "contentLength");
    assert.equal(props.blobCommittedBlockCount, 2, "x-ms-blob-committed-block-count");
    const got = await readAll((await blob.download()).readableStreamBody);
    assert.equal(got.toString(), "first line\nsecond line\n");
  });

  it("stages blocks, commits a block list and gets it back", async () => {
    const container = await newContainer("blocks");
    const blob = container.getBlockBlobClient("staged.txt");
    const parts = ["alpha-", "bravo-", "charlie"].map((s) => Buffer.from(s));
    const ids = parts.map((_, i) => blockId(i));
    for (const [i, part] of parts.entries()) {
      const res = await blob.stageBlock(ids[i], part, part.length);
      assert.equal(res._response.status, 201, `Put Block ${i} answers 201 Created`);
    }

    // Staged but not committed: the blob does not exist yet, its blocks do.
    await rejectsWith(blob.getProperties(), 404, "BlobNotFound");
    const staged = await blob.getBlockList("uncommitted");
    assert.deepEqual(
      staged.uncommittedBlocks?.map((b) => b.name).sort(),
      [...ids].sort(),
      "the three staged blocks are uncommitted",
    );
    assert.deepEqual(staged.committedBlocks ?? [], [], "nothing committed yet");

    // The block list order, not the staging order, is the blob's content.
    const order = [ids[2], ids[0], ids[1]];
    const committed = await blob.commitBlockList(order, {
      blobHTTPHeaders: { blobContentType: "text/plain" },
      metadata: { committed: "yes" },
    });
    assert.equal(committed._response.status, 201, "Put Block List answers 201 Created");

    const list = await blob.getBlockList("all");
    assert.deepEqual(
      list.committedBlocks?.map((b) => b.name),
      order,
      "committed blocks in block-list order",
    );
    assert.deepEqual(
      list.committedBlocks?.map((b) => b.size),
      [parts[2].length, parts[0].length, parts[1].length],
      "block sizes",
    );
    assert.deepEqual(list.uncommittedBlocks ?? [], [], "committing drops the uncommitted list");

    const got = await readAll((await blob.download()).readableStreamBody);
    assert.equal(got.toString(), "charliealpha-bravo-");
    const props = await blob.getProperties();
    assert.equal(props.contentType, "text/plain");
    assert.deepEqual(props.metadata, { committed: "yes" });
  });

  it("deletes a blob; getProperties is then 404 BlobNotFound", async () => {
    const container = await newContainer("delblob");
    const blob = container.getBlockBlobClient("doomed.txt");
    await blob.upload("bye", 3);
    const res = await blob.delete();
    assert.equal(res._response.status, 202, "Delete Blob answers 202 Accepted");
    await rejectsWith(blob.getProperties(), 404, "BlobNotFound");
    await rejectsWith(blob.download(), 404, "BlobNotFound");
    assert.equal(await blob.exists(), false, "exists() is false");
    await rejectsWith(blob.delete(), 404, "BlobNotFound");
  });

  it("deletes a container; it is then 404 ContainerNotFound", async () => {
    const container = await newContainer("delcont");
    await container.getBlockBlobClient("inside.txt").upload("x", 1);
    const res = await container.delete();
    assert.equal(res._response.status, 202, "Delete Container answers 202 Accepted");
    await rejectsWith(container.getProperties(), 404, "ContainerNotFound");
    assert.equal(await container.exists(), false, "exists() is false");
    await rejectsWith(container.getBlockBlobClient("inside.txt").upload("y", 1), 404, "ContainerNotFound");
  });
});

describe("shared key failures", { skip: config.auth !== "sharedkey" && "BLOB_AUTH is not sharedkey" }, () => {
  it(`a wrong account key is 403 ${BAD_SIGNATURE_CODE}`, async () => {
    const name = uniqueName("blob-wrongkey");
    containers.add(name);
    const wrong = serviceClientWithWrongKey(config).getContainerClient(name);
    await rejectsWith(wrong.create(), 403, BAD_SIGNATURE_CODE);
    assert.equal(await service.getContainerClient(name).exists(), false, "nothing was created");
  });
});

describe("SAS (account and service)", { skip: config.auth !== "sas" && "BLOB_AUTH is not sas" }, () => {
  it("a service SAS for one container reads, writes and lists it", async () => {
    const container = await newContainer("svcsas");
    const sas = containerSas(config, container.containerName, "racwdl");
    const scoped = containerClientWithSas(config, container.containerName, sas);
    const blob = scoped.getBlockBlobClient("via-sas.txt");
    await blob.upload("hello", 5);
    const got = await readAll((await blob.download()).readableStreamBody);
    assert.equal(got.toString(), "hello");
    const names = (await collect(scoped.listBlobsFlat())).map((b) => b.name);
    assert.deepEqual(names, ["via-sas.txt"]);
    await blob.delete();
  });

  it("a read-only service SAS cannot upload: 403 AuthorizationPermissionMismatch", async () => {
    const container = await newContainer("rosas");
    await container.getBlockBlobClient("existing.txt").upload("data", 4);
    const sas = containerSas(config, container.containerName, "r");
    const readOnly = containerClientWithSas(config, container.containerName, sas);
    // It does read.
    const got = await readAll((await readOnly.getBlockBlobClient("existing.txt").download()).readableStreamBody);
    assert.equal(got.toString(), "data");
    await rejectsWith(
      readOnly.getBlockBlobClient("new.txt").upload("nope", 4),
      403,
      "AuthorizationPermissionMismatch",
    );
    await rejectsWith(
      readOnly.getBlockBlobClient("existing.txt").delete(),
      403,
      "AuthorizationPermissionMismatch",
    );
    assert.equal(await container.getBlockBlobClient("new.txt").exists(), false, "nothing was uploaded");
  });

  it(`a service SAS for one container does not open another: 403 ${BAD_SIGNATURE_CODE}`, async () => {
    const a = await newContainer("sas-a");
    const b = await newContainer("sas-b");
    await b.getBlockBlobClient("secret.txt").upload("secret", 6);
    // The signature covers /blob/<account>/<container>, so a's token fails
    // the signature check on b.
    const onB = containerClientWithSas(config, b.containerName, containerSas(config, a.containerName, "racwdl"));
    await rejectsWith(onB.getBlockBlobClient("secret.txt").download(), 403, BAD_SIGNATURE_CODE);
  });

  it(`an account SAS signed with a wrong key is 403 ${BAD_SIGNATURE_CODE}`, async () => {
    const forged = serviceClientWithSas(config, accountSas(config, { key: randomKey() }));
    const name = uniqueName("blob-forged");
    containers.add(name);
    await rejectsWith(forged.getContainerClient(name).create(), 403, BAD_SIGNATURE_CODE);
    assert.equal(await service.getContainerClient(name).exists(), false, "nothing was created");
  });
});
