// Runs SQL statements with DuckDB's Node API and prints their results as one JSON array (one array of row objects per
// statement), for DatasetLayoutTests. Usage: node duckdb_query.cjs PATH/TO/@duckdb/node-api "SQL" ["SQL" ...]
// An error prints its message to stderr and exits with 1.
const [modulePath, ...statements] = process.argv.slice(2);
const { DuckDBInstance } = require(modulePath);

(async () => {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const results = [];
  for (const sql of statements) {
    const reader = await connection.runAndReadAll(sql);
    results.push(reader.getRowObjectsJson());
  }
  console.log(JSON.stringify(results));
})().catch(error => {
  console.error(error.message);
  process.exit(1);
});
