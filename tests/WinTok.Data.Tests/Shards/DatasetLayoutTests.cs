using System.Diagnostics;
using System.Text.Json;
using Parquet;
using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

/// <summary>
/// What generic Parquet readers find when pointed at a dataset's root (docs/token-shards.md §1): everything that is not
/// token rows (the errors files, the manifest, the CLI's results database) lives under a name starting with <c>_</c>,
/// which Hive, Spark and pyarrow datasets skip, so they read exactly the token rows.
/// </summary>
public sealed class DatasetLayoutTests
{
    /// <summary>Set by deploy/duckdb.sh (deploy/test.sh): the installed <c>@duckdb/node-api</c> package folder.</summary>
    public const string DuckDbVariable = "WINTOK_DUCKDB_NODE_API";

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task HiddenPathRule_WhenPointedAtADatasetWithFailures_FindsExactlyTheTokenRows()
    {
        using var dataset = new TempDataset();
        var manifest = await WriteDatasetAsync(dataset);

        // pyarrow.dataset.dataset(root, format="parquet") (and pq.read_table(root), Spark, Hive): every path component
        // below the root that starts with "_" or "." is skipped (selector_ignore_prefixes), every other file is read as
        // Parquet, so one stray file of another kind or schema breaks the read.
        var found = Directory.EnumerateFiles(dataset.Root, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dataset.Root, f).Replace('\\', '/'))
            .Where(path => !path.Split('/').Any(part => part.StartsWith('_') || part.StartsWith('.')))
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.Equal(manifest.Shards.Select(s => s.Path), found);
        long rows = 0;
        foreach (var path in found)
        {
            await using var stream = File.OpenRead(Path.Combine(dataset.Root, path));
            await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: Token);
            Assert.Contains(reader.Schema.Fields, f => f.Name == "pixel_tokens");
            rows += Enumerable.Range(0, reader.RowGroupCount).Sum(g => reader.OpenRowGroupReader(g).RowCount);
        }
        Assert.Equal(manifest.Totals.Rows, rows);
        Assert.All(manifest.Shards, s => Assert.StartsWith("_errors/", s.ErrorsPath, StringComparison.Ordinal));
        Assert.Equal(manifest.Totals.Failures, manifest.Shards.Sum(s => s.Failures));
        Assert.True(manifest.Totals.Failures > 0, "The dataset should hold failure records for this test to mean anything");
    }

    [Fact]
    public async Task DuckDb_WhenReadingTheDatasetRootAsDocumented_FindsExactlyTheTokenRows()
    {
        var duckDb = Environment.GetEnvironmentVariable(DuckDbVariable);
        if (string.IsNullOrEmpty(duckDb) || !Directory.Exists(duckDb))
        {
            var message = $"{DuckDbVariable} does not name an installed @duckdb/node-api (run: eval \"$(bash deploy/duckdb.sh)\")";
            if (Environment.GetEnvironmentVariable("CI") is { Length: > 0 })
            {
                Assert.Fail(message);
            }
            Assert.Skip(message);
        }
        using var dataset = new TempDataset();
        var manifest = await WriteDatasetAsync(dataset);
        var root = dataset.Root.Replace('\\', '/');
        var pixels = manifest.Layout.NumCodebooks * manifest.Layout.Positions;

        var results = await QueryAsync(duckDb!,
            // The hidden-path rule, written out: every *.parquet below the root except those under a "_" or "." name.
            $"""
             SELECT count(*)::INTEGER AS n FROM read_parquet('{root}/**/*.parquet', union_by_name = true, filename = true)
             WHERE NOT regexp_matches(substr(filename, {root.Length + 2}), '(^|/)[_.]')
             """,
            $"SELECT count(*)::INTEGER AS n FROM read_parquet('{root}/[!_.]*/*.parquet')",
            $"""
             SELECT count(*)::INTEGER AS n, count(DISTINCT row_id)::INTEGER AS ids, min(len(pixel_tokens))::INTEGER AS shortest,
                    max(len(pixel_tokens))::INTEGER AS longest
             FROM read_parquet('{root}/shards/*.parquet')
             """,
            $"SELECT count(*)::INTEGER AS n FROM read_parquet('{root}/_errors/*.parquet')");

        int Value(int statement, string column) => results[statement][0].GetProperty(column).GetInt32();
        Assert.Equal(manifest.Totals.Rows, Value(0, "n"));
        Assert.Equal(manifest.Totals.Rows, Value(1, "n"));
        Assert.Equal((manifest.Totals.Rows, manifest.Totals.Rows, pixels, pixels),
            (Value(2, "n"), Value(2, "ids"), Value(2, "shortest"), Value(2, "longest")));
        Assert.Equal(manifest.Totals.Failures, Value(3, "n"));
    }

    /// <summary>Three shards with a failure each, plus what <c>wintok tokenize</c> keeps beside them.</summary>
    private static async Task<DatasetManifest> WriteDatasetAsync(TempDataset dataset)
    {
        var manifest = await TestDatasets.WriteAsync(dataset.Store, [5, 3, 4], rowGroupSize: 2, Token);
        // The CLI's results database (OUTPUT/_wintok/results.db, see TokenizeCommand.StateFolder) and a staging file a
        // crash left behind (LocalFileStore: ".{name}.{guid}.tmp" beside the target).
        Directory.CreateDirectory(Path.Combine(dataset.Root, "_wintok"));
        await File.WriteAllTextAsync(Path.Combine(dataset.Root, "_wintok", "results.db"), "SQLite format 3", Token);
        await File.WriteAllTextAsync(Path.Combine(dataset.Root, "shards", $".part-000003.parquet.{Guid.NewGuid():N}.tmp"), "PAR1", Token);
        return manifest;
    }

    private static async Task<JsonElement[][]> QueryAsync(string duckDbModule, params string[] statements)
    {
        var script = Path.Combine(WinTok.TestSupport.TestFixtures.RepositoryRoot, "tests", "WinTok.Data.Tests", "Shards", "duckdb_query.cjs");
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(duckDbModule);
        foreach (var statement in statements)
        {
            start.ArgumentList.Add(statement);
        }
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(Token);
        var error = process.StandardError.ReadToEndAsync(Token);
        await process.WaitForExitAsync(Token);
        Assert.True(process.ExitCode == 0, $"DuckDB failed: {await error}");
        return JsonSerializer.Deserialize<JsonElement[][]>(await output)!;
    }
}
