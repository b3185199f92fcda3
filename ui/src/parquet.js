// A Parquet artifact's first rows as a table, read in the browser (hyparquet, loaded only when one is previewed).
// What it may expand is decided here, not by the file: every page is decompressed through this module's own snappy
// step, which refuses a page, or a file in all, that would grow past the bounds below before anything is allocated.
import { parquetMetadata, parquetReadObjects, parquetSchema, snappyUncompress } from "hyparquet";

const MAX_ROWS = 200;
const MAX_COLUMNS = 50;
const MAX_EXPANDED = 64 << 20; // bytes of decompressed pages in all

function cell(v) {
  if (v == null) return "";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return v;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? "" : v.toISOString();
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  try {
    return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)) ?? String(v);
  } catch {
    return String(v);
  }
}

export async function parquetRows(buffer) {
  const metadata = parquetMetadata(buffer);
  const names = parquetSchema(metadata)
    .children.map((c) => c.element.name)
    .slice(0, MAX_COLUMNS);
  let expanded = 0;
  const snappy = (bytes, size) => {
    expanded += size;
    if (!(size >= 0) || expanded > MAX_EXPANDED) throw new Error(`its pages would expand past ${MAX_EXPANDED >> 20} MB`);
    const page = new Uint8Array(size);
    snappyUncompress(bytes, page);
    return page;
  };
  const uncompressed = (bytes, size) => {
    if (bytes.length !== size) throw new Error("a page's size does not match its header");
    return bytes;
  };
  const refuse = (codec) => () => {
    throw new Error(`its pages are compressed with ${codec}, which this preview does not read`);
  };
  const compressors = { SNAPPY: snappy, UNCOMPRESSED: uncompressed, GZIP: refuse("GZIP"), BROTLI: refuse("BROTLI"), ZSTD: refuse("ZSTD"), LZ4: refuse("LZ4"), LZ4_RAW: refuse("LZ4_RAW"), LZO: refuse("LZO") };
  const rows = await parquetReadObjects({ file: buffer, metadata, rowEnd: Math.min(MAX_ROWS, Number(metadata.num_rows)), columns: names, compressors });
  return { rows: [names, ...rows.map((r) => names.map((n) => cell(r[n])))], total: Number(metadata.num_rows) };
}
