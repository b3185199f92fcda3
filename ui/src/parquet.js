// A Parquet artifact's first rows as a table, read in the browser (hyparquet, loaded only when one is previewed).
// What it may build is decided here, by this reader's bounds, not by what the file says of itself: before anything
// is decoded, every page header of the column chunks that will be read is checked (the values a page says it holds
// size the arrays decoding it makes, so a few bytes could claim billions); every page is decompressed through this
// module's own snappy step, which refuses a page that would grow past the bounds before allocating it.
import { parquetMetadata, parquetRead, parquetSchema, snappyUncompress } from "hyparquet";
import { parquetHeader } from "hyparquet/src/column.js";

const MAX_ROWS = 200;
const MAX_COLUMNS = 50;
const MAX_EXPANDED = 64 << 20; // bytes of decompressed pages in all
const MAX_PAGE_VALUES = 1 << 20; // values one page may say it holds
const MAX_VALUES = 1 << 22; // and all the pages read

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

const refuse = (why) => {
  throw new Error(why);
};

// The page headers of the column chunks read for the first rows, checked against this reader's bounds.
function checkPages(buffer, metadata, columns) {
  const view = new DataView(buffer);
  let rows = 0;
  let values = 0;
  let expanded = 0;
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns.filter((c, i) => i < columns)) {
      const meta = chunk.meta_data;
      if (!meta) refuse("a column's metadata is missing");
      const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
      const end = start + Number(meta.total_compressed_size);
      if (!(start >= 0 && end <= buffer.byteLength && start < end)) refuse("a column's pages lie outside the file");
      const reader = { view, offset: start };
      while (reader.offset < end) {
        const header = parquetHeader(reader);
        const page = header.data_page_header || header.data_page_header_v2 || header.dictionary_page_header;
        const n = Number(page?.num_values ?? 0);
        const size = Number(header.uncompressed_page_size);
        const compressed = Number(header.compressed_page_size);
        if (!(n >= 0 && n <= MAX_PAGE_VALUES)) refuse(`a page says it holds ${n.toLocaleString()} values (this preview reads at most ${MAX_PAGE_VALUES.toLocaleString()})`);
        if (!(size >= 0 && compressed >= 0)) refuse("a page's sizes are not sizes");
        values += n;
        expanded += size;
        if (values > MAX_VALUES || expanded > MAX_EXPANDED) refuse(`its pages would expand past ${MAX_EXPANDED >> 20} MB`);
        reader.offset += compressed;
      }
    }
    rows += Number(group.num_rows);
    if (rows >= MAX_ROWS) break;
  }
}

export async function parquetRows(buffer) {
  const metadata = parquetMetadata(buffer);
  const names = parquetSchema(metadata).children.map((c) => c.element.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) refuse(`two of its columns are named ${JSON.stringify(twice)}`); // read by name, they would show one's values twice
  const shown = names.slice(0, MAX_COLUMNS);
  // the leaf columns of the shown ones (a nested column has several): only those are checked and read
  const leaves = names.length > MAX_COLUMNS ? metadata.row_groups[0]?.columns.findIndex((c) => !shown.includes(c.meta_data?.path_in_schema?.[0])) : -1;
  checkPages(buffer, metadata, leaves === -1 || leaves === undefined ? Infinity : leaves);
  let expanded = 0;
  const snappy = (bytes, size) => {
    expanded += size;
    if (!(size >= 0) || expanded > MAX_EXPANDED) refuse(`its pages would expand past ${MAX_EXPANDED >> 20} MB`);
    const page = new Uint8Array(size);
    snappyUncompress(bytes, page);
    return page;
  };
  const other = (codec) => () => refuse(`its pages are compressed with ${codec}, which this preview does not read`);
  const compressors = { SNAPPY: snappy, GZIP: other("GZIP"), BROTLI: other("BROTLI"), ZSTD: other("ZSTD"), LZ4: other("LZ4"), LZ4_RAW: other("LZ4_RAW"), LZO: other("LZO") };
  const total = Math.max(0, Number(metadata.num_rows) || 0);
  // rows as arrays in the schema's order: two columns of one name, or one named __proto__, keep their own values
  const rows = await new Promise((resolve, reject) => {
    parquetRead({ file: buffer, metadata, rowEnd: Math.min(MAX_ROWS, total), columns: names.length > MAX_COLUMNS ? shown : undefined, compressors, rowFormat: "array", onComplete: resolve }).catch(reject);
  });
  return { rows: [shown, ...rows.map((r) => shown.map((_, i) => cell(r[i])))], total };
}
