// Decodes an Avro object container file with avsc — an implementation
// independent of the Go library Outpost writes with — and prints each record
// as a JSON line (bytes as UTF-8 text), for the routing storage tests.
// Usage: node avro-decode.mjs <file.avro>
import avro from "avsc";

const file = process.argv[2];
if (!file) {
  console.error("usage: node avro-decode.mjs <file.avro>");
  process.exit(2);
}
avro
  .createFileDecoder(file)
  .on("metadata", (type) => console.error(`schema: ${JSON.stringify(type.schema())}`))
  .on("data", (record) => {
    const out = {};
    for (const [k, v] of Object.entries(record)) out[k] = Buffer.isBuffer(v) ? v.toString("utf8") : v;
    console.log(JSON.stringify(out));
  })
  .on("error", (err) => {
    console.error(String(err));
    process.exit(1);
  });
