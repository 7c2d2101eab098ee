using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Inference;
using WinTok.Jobs.Evaluate;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.IntegrationTests;

/// <summary>
/// UniTok through the command line, as users run it (the built CLI as a child process): the UniTok fixture's own
/// reference <c>tiny.pth</c> tokenizes and evaluates like a WinTok checkpoint, its shards say which model made them, its
/// zero-shot uses its own CLIP text tower, and `wintok metrics compare` sets it beside a WinTok checkpoint. The fixture's
/// <c>args.model</c> is <c>vitamin_tiny</c>, no preset, so every run gives the ViTamin shape as JSON (`--encoder-config`,
/// the fixture config's <c>architecture</c> section), as the WinTok reference fixture needs its SigLIP config.json.
/// </summary>
public sealed class CliUniTokTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(6);
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-cli-tests", Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static string Checkpoint => TestFixtures.File("unitok", "tiny.pth");

    public void Dispose()
    {
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("detected")]
    [InlineData("unitok")]
    public async Task Tokenize_AUniTokCheckpoint_WritesShardsThatRecordUniTokItsConfigurationAndTheModelsTokens(string kind)
    {
        var kit = await UniTokKit.WriteAsync(folder);
        var output = Path.Combine(folder, "tokens");
        string[] model = kind == "detected" ? [] : ["--model", kind];

        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", kit.Images, output, "--checkpoint", Checkpoint, "--encoder-config", kit.EncoderConfig, "--device", "cpu", .. model],
            NoEnvironment, Patience);

        Assert.True(exitCode == 0, $"tokenize exited with {exitCode}:\n{log}");
        var dataset = FileStores.Open(output, blobService: null);
        var manifest = await DatasetManifest.ReadAsync(dataset, Token);
        Assert.Equal(ModelKinds.UniTok, manifest.ModelKind);
        Assert.Equal(Sha256(Checkpoint), manifest.CheckpointSha256);
        using (var config = JsonDocument.Parse(manifest.ModelConfig))
        {
            Assert.Equal("vitamin_tiny", config.RootElement.GetProperty("model").GetString());
            Assert.Equal(8, config.RootElement.GetProperty("num_codebooks").GetInt32());
            Assert.Equal(64, config.RootElement.GetProperty(UniTokArgs.ViTaminConfigKey).GetProperty("vit_dim").GetInt32());
        }
        Assert.Equal(new TokenLayout(8, 64, 9, "3x3", 0, 0), manifest.Layout);
        Assert.Equal(new ManifestTotals(1, 6, manifest.Totals.Bytes, 1), manifest.Totals);

        await using var shard = await TokenShardReader.OpenAsync(dataset, manifest.Shards.Single().Path, Token);
        Assert.Equal(ModelKinds.UniTok, shard.Metadata["wintok.model_kind"]);
        Assert.Equal(manifest.ModelConfig, shard.Metadata["wintok.model_config"]);
        // The tokens of an image are the ones the model gives for that image in this process.
        var row = (await shard.ReadRowGroupAsync(0, ShardColumns.Pixel | ShardColumns.Info, Token))[0];
        Assert.Equal(TokensInProcess(row.SourceUri, kit.EncoderConfig), row.PixelTokens.Select(t => (long)t).ToArray());

        var (verifyExitCode, verifyStdout, verifyLog) = await WorkerProcess.RunAsync("verify", ["verify", output], NoEnvironment, Patience);
        Assert.True(verifyExitCode == 0, $"verify exited with {verifyExitCode}:\n{verifyLog}");
        Assert.Contains(verifyStdout, line => line.EndsWith("OK, 1 shards, 6 rows", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tokenize_AUniTokCheckpointAsWinTok_ExitsWith2NamingBothKindsAndLeavesNothingBehind()
    {
        var kit = await UniTokKit.WriteAsync(folder);
        var before = Snapshot(folder);

        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", kit.Images, Path.Combine(folder, "tokens"), "--checkpoint", Checkpoint, "--model", "wintok", "--device", "cpu"],
            NoEnvironment, Patience);

        Assert.True(exitCode == 2, $"tokenize exited with {exitCode}:\n{log}");
        Assert.Contains($"tokenize err: wintok: {Checkpoint} holds a unitok checkpoint, not a wintok one", log, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(folder));
    }

    [Fact]
    public async Task Evaluate_AUniTokCheckpoint_MeasuresEveryMetricWithItsOwnTextTowerUnderTheCommonProtocol()
    {
        var kit = await UniTokKit.WriteAsync(folder);
        var output = Path.Combine(folder, "evaluation");

        // No --text-tower: UniTok's zero-shot uses the CLIP text tower inside its checkpoint.
        var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate",
            [.. kit.EvaluateArguments(Checkpoint, output, "psnr,ssim,lpips,zeroshot,usage"), "--encoder-config", kit.EncoderConfig],
            kit.Environment, Patience);

        Assert.True(exitCode == 0, $"evaluate exited with {exitCode}:\n{log}");
        using var metrics = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "metrics.json"), Token));
        var root = metrics.RootElement;
        var values = root.GetProperty("metrics");
        foreach (var name in new[] { "psnr", "ssim", "lpips_alex", "lpips_vgg", "zeroshot_top1", "zeroshot_top5", "usage_percent", "usage_entropy", "usage_perplexity" })
            Assert.True(values.TryGetProperty(name, out var value) && double.IsFinite(value.GetDouble()), $"metrics.json lacks a finite {name}: {values}");
        Assert.Equal(ModelKinds.UniTok, root.GetProperty("model_kind").GetString());
        Assert.Equal((6, 1), (root.GetProperty("images").GetInt64(), root.GetProperty("failures").GetInt64()));
        // Usage counts every codebook: 6 images x 8 codebooks x 9 positions, ids of 8 x 64.
        var usage = root.GetProperty("details").GetProperty("usage");
        Assert.Equal(8, usage.GetProperty("per_codebook").GetArrayLength());
        Assert.Equal((6 * 8 * 9, 8 * 64), (usage.GetProperty("total").GetInt64(), usage.GetProperty("vocabulary").GetInt64()));
        // The protocol is the one a WinTok evaluation of the same precision and preprocessing gets.
        var preprocessing = new ImagePreprocessor(new PreprocessOptions { ImageSize = 48 }).Description;
        Assert.Equal(preprocessing, root.GetProperty("preprocessing").GetString());
        Assert.Equal(EvaluateJobSpec.DescribeProtocol(EvaluationPrecision.Float32, preprocessing), root.GetProperty("protocol").GetString());
    }

    [Fact]
    public async Task MetricsCompare_OfAWinTokAndAUniTokEvaluationInOneDatabase_ShowsThemSideBySide()
    {
        var kit = await UniTokKit.WriteAsync(folder);
        var database = Path.Combine(folder, "results.db");
        // A random WinTok at UniTok's 48 pixels: the same preprocessing, hence the same protocol.
        var wintok = Path.Combine(folder, "wintok-48.safetensors");
        manual_seed(0);
        using (var model = new WinTokModel(new WinTokConfig(
                   new EncoderShape(HiddenSize: 64, Layers: 2, Heads: 4, IntermediateSize: 128, PatchSize: 16, ImageSize: 48),
                   NumLatentTokens: 16, VocabSize: 1024, VocabWidth: 16, NumCodebooks: 4,
                   DecoderDepth: 2, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128)))
            WinTokCheckpoint.Save(model, wintok);
        foreach (var (checkpoint, name, extra) in new[] { (wintok, "wintok", Array.Empty<string>()), (Checkpoint, "unitok", ["--encoder-config", kit.EncoderConfig]) })
        {
            var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate",
                [.. kit.EvaluateArguments(checkpoint, Path.Combine(folder, name), "psnr,ssim,usage"), .. extra, "--db", database], kit.Environment, Patience);
            Assert.True(exitCode == 0, $"evaluate of the {name} checkpoint exited with {exitCode}:\n{log}");
        }

        var (compareExit, compared, compareLog) = await WorkerProcess.RunAsync("compare",
            ["metrics", "compare", wintok, Checkpoint, "--db", database], NoEnvironment, Patience);

        Assert.True(compareExit == 0, $"compare exited with {compareExit}:\n{compareLog}");
        var header = compared.First(line => line.Contains("A: ", StringComparison.Ordinal));
        Assert.Contains($"wintok-48.safetensors@{Sha256(wintok)[..8]} (wintok)", header, StringComparison.Ordinal);
        Assert.Contains($"tiny.pth@{Sha256(Checkpoint)[..8]} (unitok)", header, StringComparison.Ordinal);
        foreach (var metric in new[] { "psnr", "ssim", "usage_percent" })
        {
            // Both values, their difference and which is better: no "-" for a missing side.
            var cells = compared.Single(line => line.Contains($" {metric} ", StringComparison.Ordinal))
                .Split('│', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            Assert.True(cells.Length >= 4 && cells[1..4].All(cell => double.TryParse(cell, CultureInfo.InvariantCulture, out _)),
                $"the {metric} row lacks a value: {string.Join(" | ", cells)}\n{string.Join('\n', compared)}");
        }
    }

    /// <summary>
    /// The ids (K·L, codebook-major as shards store them) that the UniTok fixture, loaded in this process as the CLI
    /// loads it, gives for the image at <paramref name="path"/> preprocessed as the tokenize job does.
    /// </summary>
    private static long[] TokensInProcess(string path, string encoderConfig)
    {
        var preprocessor = new ImagePreprocessor(new PreprocessOptions { ImageSize = 48 });
        var values = new float[preprocessor.ValuesPerImage];
        var result = preprocessor.Preprocess(File.ReadAllBytes(path), values);
        Assert.True(result.Succeeded, $"{path} did not preprocess: {result}");
        using var model = TokenizerCheckpoints.Load(Checkpoint, new ModelLoadOptions(EncoderConfigJson: File.ReadAllText(encoderConfig))).Model;
        model.PrepareForInference(CPU, ScalarType.Float32, CudaFastPaths.None);
        using var noGrad = inference_mode();
        using var images = tensor(values, [1, 3, 48, 48]);
        using var tokens = model.Tokenize(images);
        return tokens.Indices.reshape(-1).data<long>().ToArray();
    }

    private static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    /// <summary>Every file and folder under <paramref name="root"/> with its size: what a rejected run must not change.</summary>
    private static List<string> Snapshot(string root) => [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
        .Select(path => File.Exists(path) ? $"{Path.GetRelativePath(root, path)} {new FileInfo(path).Length}" : Path.GetRelativePath(root, path) + "/")
        .Order(StringComparer.Ordinal)];

    /// <summary>
    /// What the UniTok runs need on disk: 6 `wintok sample` images (and its corrupt file) in three classes, the fixture's
    /// ViTamin shape as JSON, formula weights for LPIPS, and caches inside the test's folder.
    /// </summary>
    private sealed record UniTokKit(string Images, string EncoderConfig, string Weights, IReadOnlyDictionary<string, string> Environment)
    {
        public static async Task<UniTokKit> WriteAsync(string folder)
        {
            var (exitCode, _, log) = await WorkerProcess.RunAsync("sample", ["sample", folder, "--images-per-class", "2"], NoEnvironment, Patience);
            Assert.True(exitCode == 0, $"sample exited with {exitCode}:\n{log}");
            var encoderConfig = Path.Combine(folder, "vitamin-tiny.json");
            using (var fixture = JsonDocument.Parse(await File.ReadAllTextAsync(TestFixtures.File("unitok", "tiny.config.json"), Token)))
                await File.WriteAllTextAsync(encoderConfig, fixture.RootElement.GetProperty("architecture").GetRawText(), Token);
            var weights = Path.Combine(folder, "weights");
            FormulaWeightFiles.WriteFolder(weights);
            var environment = new Dictionary<string, string>
            {
                // Formula weights have the real files' tensors, not their bytes.
                ["Evaluation__VerifyWeightHashes"] = "false",
                ["Evaluation__ClassifierCache"] = Path.Combine(folder, "cache", "classifiers"),
                ["Evaluation__StatisticsCache"] = Path.Combine(folder, "cache", "statistics"),
            };
            return new UniTokKit(Path.Combine(folder, "images"), encoderConfig, weights, environment);
        }

        public IEnumerable<string> EvaluateArguments(string checkpoint, string output, string metrics) =>
            ["evaluate", checkpoint, Images, "--output", output, "--metrics", metrics, "--weights", Weights, "--device", "cpu"];
    }
}
