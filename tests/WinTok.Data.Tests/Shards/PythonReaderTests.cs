using System.Diagnostics;
using System.Text.Json.Nodes;
using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

/// <summary>
/// The Python reference reader (docs/examples/read_tokens.py) against a dataset written by <see cref="ShardWriter"/>
/// with the production layout. Runs where python3 has pyarrow and numpy and skips elsewhere. With
/// WINTOK_PYTHON_CHECK_DIR set, the dataset and expected.json are kept there, to run the script on another machine:
/// <c>python3 docs/examples/read_tokens.py DIR/dataset --verify --expect DIR/expected.json</c>.
/// </summary>
public sealed class PythonReaderTests
{
    // The production shape: 4 codebooks over a 16x16 grid, 32 semantic tokens of 1152, the pooled vector.
    private static readonly TokenLayout Layout = new(4, 4096, 256, "16x16", SemanticTokens: 32, SemanticDim: 1152, HasPooled: true);

    [Fact]
    public async Task PythonReader_WhenReadingAShardWrittenInCSharp_SeesTheSameShapesAndValues()
    {
        var token = TestContext.Current.CancellationToken;
        var keep = Environment.GetEnvironmentVariable("WINTOK_PYTHON_CHECK_DIR");
        var root = keep is { Length: > 0 } ? Path.GetFullPath(keep) : Path.Combine(Path.GetTempPath(), "wintok-tests", Guid.NewGuid().ToString("N"));
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        var dataset = new WinTok.Data.Corpus.LocalFileStore(Path.Combine(root, "dataset"));
        var expected = new JsonArray();
        var shards = new List<ShardInfo>();
        foreach (var (partition, count) in new[] { (0, 5), (1, 3) })
        {
            var writer = new ShardWriter(dataset, partition, TestDatasets.Metadata(Layout), new ShardWriterOptions { RowGroupSize = 2 });
            for (var i = 0; i < count; i++)
            {
                var row = TestDatasets.Row(partition, i, Layout);
                writer.Add(row);
                expected.Add(Expectation(row, partition, i));
            }

            shards.Add(await writer.CommitAsync(token));
        }

        await ManifestWriter.WriteAsync(dataset, TestDatasets.Metadata(Layout), shards, token);
        var expectFile = Path.Combine(root, "expected.json");
        await File.WriteAllTextAsync(expectFile, new JsonObject { ["rows"] = expected }.ToJsonString(), token);

        var python = await RunAsync("python3", ["-c", "import pyarrow, numpy"], token);
        if (python.ExitCode != 0)
        {
            Assert.Skip($"python3 with pyarrow and numpy is not available here ({python.Output.Trim()}); the dataset is at {root}");
        }

        var run = await RunAsync("python3", [ScriptPath(), Path.Combine(root, "dataset"), "--verify", "--expect", expectFile], token);

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains("pixel_tokens uint16[2, 4, 256]", run.Output, StringComparison.Ordinal);
        Assert.Contains("semantic_tokens float32[2, 32, 1152]", run.Output, StringComparison.Ordinal);
        Assert.Contains("checked 8 rows", run.Output, StringComparison.Ordinal);
    }

    private static JsonObject Expectation(TokenRow row, int partition, int index)
    {
        var layout = Layout;
        // Pixel tokens as (K, L): element [k][l] is flat index k * L + l (codebook-major).
        var pixel = new JsonArray();
        for (var k = 0; k < layout.NumCodebooks; k++)
        {
            pixel.Add(new JsonArray([.. row.PixelTokens.Skip(k * layout.Positions).Take(layout.Positions).Select(v => (JsonNode)v)]));
        }

        var semantic = row.SemanticTokens!.Select(BFloat16Bits.ToSingle).ToArray();
        var samples = new JsonArray();
        foreach (var (n, d) in new[] { (0, 0), (0, 1151), (1, 0), (31, 1151), (17, 500) })
        {
            samples.Add(new JsonArray(n, d, (double)semantic[n * layout.SemanticDim + d]));
        }

        return new JsonObject
        {
            ["key"] = row.Key,
            ["row_id"] = ((long)partition << 32) + index,
            ["label"] = row.Label,
            ["pixel_tokens"] = pixel,
            ["semantic_samples"] = samples,
            ["semantic_sum"] = semantic.Sum(v => (double)v),
            ["semantic_pooled"] = new JsonArray([.. row.SemanticPooled!.Select(b => (JsonNode)(double)BFloat16Bits.ToSingle(b))]),
        };
    }

    private static string ScriptPath()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "WinTok.sln")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory?.FullName ?? throw new DirectoryNotFoundException("WinTok.sln not found above the test binaries"), "docs", "examples", "read_tokens.py");
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var error = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return (process.ExitCode, await output + await error);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
