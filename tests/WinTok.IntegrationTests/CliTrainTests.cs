using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Results;

namespace WinTok.IntegrationTests;

/// <summary>
/// `wintok train` on embedded defaults, as users run it: the built CLI as a child process on `wintok sample`'s training
/// kit, with an evaluation per checkpoint. No server needed.
/// </summary>
public sealed class CliTrainTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(6);
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-cli-tests", Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed)
            Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Train_OnTheSampleKitWithAnEvaluation_TrainsToTheEndRecordsItAndEvaluatesItsCheckpoints()
    {
        var (sampleExit, _, sampleLog) = await WorkerProcess.RunAsync("sample", ["sample", folder], NoEnvironment, Patience);
        Assert.True(sampleExit == 0, $"sample exited with {sampleExit}:\n{sampleLog}");
        var config = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(await File.ReadAllTextAsync(Path.Combine(folder, "train.json"), Token))!
            .ToDictionary(p => p.Key, p => (object)p.Value);
        (config["epoch"], config["save_every"], config["evaluate_every"]) = (1, 3, 6);
        config["evaluation"] = new Dictionary<string, object> { ["dataset"] = "images", ["metrics"] = "psnr,usage" };
        var path = Path.Combine(folder, "train-eval.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(config), Token);

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("train", ["train", path], NoEnvironment, Patience);

        Assert.True(exitCode == 0, $"train exited with {exitCode}:\n{log}");
        var output = Path.Combine(folder, "training-run");
        Assert.True(stdout.Any(line => line.Contains("trained:    7 of 7 iterations", StringComparison.Ordinal)), string.Join('\n', stdout));
        Assert.Equal(["ckpt-ep0-iter2.pth", "ckpt-ep0-iter5.pth", "ckpt-last.pth"],
            Directory.GetFiles(output, "ckpt-*.pth").Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(output, "tensorboard")));
        // Evaluated at iteration 6 (evaluate_every) and the last checkpoint, each recorded with its numbers.
        Assert.True(File.Exists(Path.Combine(output, "evaluations", "ckpt-ep0-iter5", "metrics.json")), log);
        Assert.True(File.Exists(Path.Combine(output, "evaluations", "ckpt-last", "metrics.json")), log);
        Assert.False(Directory.Exists(Path.Combine(output, "evaluations", "ckpt-ep0-iter2")));

        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={Path.Combine(output, "_wintok", "results.db")}",
        }, builder => builder.AddResultsStore());
        await host.StartAsync(Token);
        var jobs = await host.Services.GetRequiredService<ResultsRepository>().ListJobsAsync(10, null, Token);
        var train = Assert.Single(jobs, j => j.Kind == "train");
        Assert.Equal(JobStatus.Succeeded, train.Status);
        Assert.Equal(2, jobs.Count(j => j.Kind == "evaluate" && j.Status == JobStatus.Succeeded));
        var losses = await host.Services.GetRequiredService<TrainingMetricsRepository>().ListAsync(train.Id, "Lnll", Token);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => (long)i), losses.Select(l => l.Iteration));
        Assert.All(losses, l => Assert.True(double.IsFinite(l.Value) && l.Value > 0));
        var evaluations = await host.Services.GetRequiredService<EvaluationsRepository>().ListAsync(new EvaluationFilter(), Token);
        Assert.Contains(evaluations, e => e.TrainingIteration == 5 && e.CheckpointPath.EndsWith("ckpt-ep0-iter5.safetensors", StringComparison.Ordinal));
        using var metrics = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "evaluations", "ckpt-last", "metrics.json"), Token));
        Assert.Contains("psnr", metrics.RootElement.GetRawText(), StringComparison.Ordinal);
        await host.StopAsync(Token);
    }
}
