using System.Globalization;
using System.Text.Json;
using Parquet;
using WinTok.Jobs.Evaluate;

namespace WinTok.IntegrationTests;

/// <summary>
/// `wintok evaluate` on the embedded defaults, run as users run it (the built CLI as a child process): the reference's
/// public tiny checkpoint on the `wintok sample` images, every metric, with the metrics fixture's formula weights for
/// the metric networks and the zero-shot fixture's tiny SigLIP text tower. No server needed.
/// </summary>
public sealed class CliEvaluateTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(6);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-cli-tests", Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Evaluate_WithEveryMetric_WritesMetricsPerImageValuesAndAGridAndRecordsThem()
    {
        var kit = await EvaluationKit.WriteAsync(folder);
        var output = Path.Combine(folder, "evaluation");

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("evaluate", [.. kit.Arguments(output, "rfid,psnr,ssim,lpips,zeroshot,usage")],
            kit.Environment, Patience);

        Assert.True(exitCode == 0, $"evaluate exited with {exitCode}:\n{log}");
        using var metrics = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "metrics.json"), Token));
        var values = metrics.RootElement.GetProperty("metrics");
        foreach (var name in new[] { "rfid", "psnr", "ssim", "lpips_alex", "lpips_vgg", "zeroshot_top1", "zeroshot_top5", "usage_percent", "usage_entropy", "usage_perplexity" })
            Assert.True(values.TryGetProperty(name, out var value) && double.IsFinite(value.GetDouble()), $"metrics.json lacks a finite {name}: {values}");
        Assert.Equal(24, metrics.RootElement.GetProperty("images").GetInt64());
        Assert.Equal(1, metrics.RootElement.GetProperty("failures").GetInt64());
        Assert.True(new FileInfo(Path.Combine(output, "grid.png")).Length > 0);

        // The per-image values are the ones the summary averages: their mean is the PSNR's per-image mean.
        var psnr = await ReadColumnAsync(Path.Combine(output, "per_image", "part-000000.parquet"), "psnr");
        Assert.Equal(24, psnr.Length);
        var details = metrics.RootElement.GetProperty("details").GetProperty("psnr");
        Assert.Equal(psnr.Average(), details.GetProperty("per_image_mean").GetDouble(), 9);

        var database = Path.Combine(output, "_wintok", "results.db");
        var (listExit, listed, listLog) = await WorkerProcess.RunAsync("metrics", ["metrics", "list", "--db", database], new Dictionary<string, string>(), Patience);
        Assert.True(listExit == 0, listLog);
        Assert.Contains(listed, line => line.Contains("images", StringComparison.Ordinal) && line.Contains("24", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MetricsCompare_OfTheSameWeightsInTwoFormats_ShowsEqualValues()
    {
        var kit = await EvaluationKit.WriteAsync(folder);
        var database = Path.Combine(folder, "results.db");
        // The same weights as a safetensors file of ours (it carries its args): another file, another hash, same numbers.
        var safetensors = Path.Combine(folder, "tiny.safetensors");
        var shape = WinTok.Model.ReferenceArgs.EncoderFromHfConfigJson(await File.ReadAllTextAsync(kit.EncoderConfig, Token));
        using (var loaded = WinTok.Model.WinTokCheckpoint.Load(kit.Checkpoint, shape).Model) WinTok.Model.WinTokCheckpoint.Save(loaded, safetensors);
        foreach (var (checkpoint, name) in new[] { (kit.Checkpoint, "pth"), (safetensors, "safetensors") })
        {
            var arguments = kit.Arguments(Path.Combine(folder, name), "psnr,ssim,usage").ToList();
            arguments[1] = checkpoint;
            var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate", [.. arguments, "--db", database], kit.Environment, Patience);
            Assert.True(exitCode == 0, $"evaluate of the {name} exited with {exitCode}:\n{log}");
        }

        var (compareExit, compared, compareLog) = await WorkerProcess.RunAsync("compare",
            ["metrics", "compare", kit.Checkpoint, safetensors, "--db", database], new Dictionary<string, string>(), Patience);

        Assert.True(compareExit == 0, compareLog);
        var psnr = compared.Single(line => line.Contains("psnr", StringComparison.Ordinal));
        Assert.Contains(" 0 ", psnr.Replace("│", " ", StringComparison.Ordinal), StringComparison.Ordinal); // B - A
    }

    [Fact]
    public async Task Evaluate_WhenAWeightFileIsMissing_ExitsWith2NamingItAndLeavesNothingBehind()
    {
        var kit = await EvaluationKit.WriteAsync(folder);
        File.Delete(Path.Combine(kit.Weights, "vgg16-397923af.pth"));
        var output = Path.Combine(folder, "evaluation");

        var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate", [.. kit.Arguments(output, "lpips")], kit.Environment, Patience);

        Assert.Equal(2, exitCode);
        Assert.Contains("vgg16-397923af.pth", log, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Evaluate_WhenAWeightFileIsNotThePublishedOne_ExitsWith2NamingItsHash()
    {
        var kit = await EvaluationKit.WriteAsync(folder);
        var environment = new Dictionary<string, string>(kit.Environment) { ["Evaluation__VerifyWeightHashes"] = "true" };

        var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate", [.. kit.Arguments(Path.Combine(folder, "evaluation"), "rfid")], environment, Patience);

        Assert.Equal(2, exitCode);
        Assert.Contains("pt_inception-2015-12-05-6726825d.pth has sha256", log, StringComparison.Ordinal);
    }

    private static async Task<double[]> ReadColumnAsync(string path, string name)
    {
        await using var stream = File.OpenRead(path);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: Token);
        var field = reader.Schema.GetDataFields().Single(f => f.Name == name);
        using var group = reader.OpenRowGroupReader(0);
        var values = new double[group.RowCount];
        await group.ReadAsync<double>(field, values, cancellationToken: Token);
        return values;
    }
}

/// <summary>
/// What an evaluation test needs on disk: the sample images (`wintok sample`), the reference's tiny checkpoint with its
/// encoder's config.json, a weights folder of formula weights, and the zero-shot fixture's tiny SigLIP text tower in
/// one HF-style folder; caches inside the test's folder.
/// </summary>
internal sealed record EvaluationKit(string Images, string Checkpoint, string EncoderConfig, string Weights, string TextTower,
    IReadOnlyDictionary<string, string> Environment)
{
    public static async Task<EvaluationKit> WriteAsync(string folder, int imagesPerClass = 8)
    {
        var (exitCode, _, log) = await WorkerProcess.RunAsync("sample",
            ["sample", folder, "--images-per-class", imagesPerClass.ToString(CultureInfo.InvariantCulture)], new Dictionary<string, string>(), TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0, $"sample exited with {exitCode}:\n{log}");

        var encoderConfig = Path.Combine(folder, "siglip-tiny-config.json");
        using (var fixture = JsonDocument.Parse(await File.ReadAllTextAsync(WinTok.TestSupport.TestFixtures.File("reference", "tiny.config.json"))))
            await File.WriteAllTextAsync(encoderConfig, fixture.RootElement.GetProperty("encoder_config").GetRawText());
        var weights = Path.Combine(folder, "weights");
        WinTok.TestSupport.FormulaWeightFiles.WriteFolder(weights);
        var tower = Directory.CreateDirectory(Path.Combine(folder, "siglip2-tiny")).FullName;
        foreach (var file in Directory.EnumerateFiles(WinTok.TestSupport.TestFixtures.Folder("zeroshot/text_model"))
                     .Concat(Directory.EnumerateFiles(WinTok.TestSupport.TestFixtures.Folder("zeroshot/tokenizer"))))
            File.Copy(file, Path.Combine(tower, Path.GetFileName(file)));

        var environment = new Dictionary<string, string>
        {
            // Formula weights have the real files' tensors, not their bytes.
            ["Evaluation__VerifyWeightHashes"] = "false",
            ["Evaluation__ClassifierCache"] = Path.Combine(folder, "cache", "classifiers"),
            ["Evaluation__StatisticsCache"] = Path.Combine(folder, "cache", "statistics"),
        };
        return new EvaluationKit(Path.Combine(folder, "images"), WinTok.TestSupport.TestFixtures.File("reference", "tiny.pth"), encoderConfig,
            weights, tower, environment);
    }

    /// <summary>`evaluate CHECKPOINT IMAGES --output OUTPUT --metrics ...` with the kit's weights, tower and encoder config.</summary>
    public IEnumerable<string> Arguments(string output, string metrics) =>
    [
        "evaluate", Checkpoint, Images, "--output", output, "--metrics", metrics, "--weights", Weights, "--text-tower", TextTower,
        "--encoder-config", EncoderConfig, "--device", "cpu",
    ];
}
