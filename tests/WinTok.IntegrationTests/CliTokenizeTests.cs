using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;
using WinTok.Results;
using WinTok.Messaging;
using WinTok.Jobs;
using WinTok.Worker.Hosting;

namespace WinTok.IntegrationTests;

/// <summary>
/// `wintok tokenize` on embedded defaults, run as users run it: the built CLI as a child process, on the demo kit of
/// `wintok sample` (24 images in three classes, one corrupt file, a tiny random checkpoint). No server needed.
/// </summary>
public sealed class CliTokenizeTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);
    private static readonly Dictionary<string, string> NoEnvironment = [];

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
    public async Task Tokenize_OnACorpusWithACorruptImage_CommitsAVerifiedDatasetAndRecordsTheFailure()
    {
        var (images, checkpoint) = await WriteSampleAsync();
        var output = Path.Combine(folder, "tokens");

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", images, output, "--checkpoint", checkpoint, "--files-per-partition", "10", "--device", "cpu"], NoEnvironment, Patience);

        Assert.True(exitCode == 0, $"tokenize exited with {exitCode}:\n{log}");
        Assert.Contains(stdout, line => line.Contains("succeeded", StringComparison.Ordinal));
        var dataset = FileStores.Open(output, blobService: null);
        var manifest = await DatasetManifest.ReadAsync(dataset, Token);
        Assert.Equal(new ManifestTotals(3, 24, manifest.Totals.Bytes, 1), manifest.Totals);
        var failure = Assert.Single(await FailureFile.ReadAsync(dataset, manifest.Shards.Single(s => s.Failures == 1).ErrorsPath, Token));
        Assert.EndsWith("corrupt.jpg", failure.Key, StringComparison.Ordinal);

        var (verifyExitCode, verifyStdout, verifyLog) = await WorkerProcess.RunAsync("verify", ["verify", output], NoEnvironment, Patience);
        Assert.True(verifyExitCode == 0, $"verify exited with {verifyExitCode}:\n{verifyLog}");
        Assert.Contains(verifyStdout, line => line.EndsWith("OK, 3 shards, 24 rows", StringComparison.Ordinal));

        var job = await ReadEmbeddedJobAsync(Path.Combine(output, "_wintok", "results.db"), JobIdIn(stdout));
        Assert.Equal(JobStatus.Succeeded, job.Status);
        Assert.Equal(1, job.ItemFailures);
    }

    [Fact]
    public async Task Tokenize_WhenTheInputFolderIsMissing_ExitsWith2AndNamesIt()
    {
        var (_, checkpoint) = await WriteSampleAsync();
        var missing = Path.Combine(folder, "no-such-images");

        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", missing, Path.Combine(folder, "tokens"), "--checkpoint", checkpoint], NoEnvironment, Patience);

        Assert.Equal(2, exitCode);
        AssertOneLineError(log, $"wintok: input folder {missing} does not exist");
    }

    [Fact]
    public async Task Tokenize_WhenTheCheckpointIsUnreadable_ExitsWith2AndSaysWhy()
    {
        var (images, _) = await WriteSampleAsync();
        var notACheckpoint = Path.Combine(folder, "notes.safetensors");
        await File.WriteAllTextAsync(notACheckpoint, "not a checkpoint", Token);

        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", images, Path.Combine(folder, "tokens"), "--checkpoint", notACheckpoint], NoEnvironment, Patience);

        Assert.Equal(2, exitCode);
        AssertOneLineError(log, $"wintok: Cannot read checkpoint '{notACheckpoint}'");
    }

    [Fact]
    public async Task Tokenize_WithoutACheckpoint_ExitsWith2()
    {
        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize", ["tokenize", folder, Path.Combine(folder, "tokens")], NoEnvironment, Patience);

        Assert.Equal(2, exitCode);
        Assert.Contains("Option '--checkpoint' is required.", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokenize_WithThePublicReferenceCheckpointAndItsEncoderConfig_Succeeds()
    {
        // tiny.pth's args.model names a SigLIP folder that exists nowhere; the HF config.json of its encoder says the shape.
        var (images, _) = await WriteSampleAsync();
        var config = Path.Combine(folder, "siglip-tiny-config.json");
        using (var fixture = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(WinTok.TestSupport.TestFixtures.File("reference", "tiny.config.json"), Token)))
            await File.WriteAllTextAsync(config, fixture.RootElement.GetProperty("encoder_config").GetRawText(), Token);
        var output = Path.Combine(folder, "tokens");

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("tokenize", ["tokenize", images, output, "--checkpoint",
            WinTok.TestSupport.TestFixtures.File("reference", "tiny.pth"), "--encoder-config", config, "--device", "cpu"], NoEnvironment, Patience);

        Assert.True(exitCode == 0, $"tokenize exited with {exitCode}:\n{log}");
        var manifest = await DatasetManifest.ReadAsync(FileStores.Open(output, blobService: null), Token);
        Assert.Equal(24, manifest.Totals.Rows);
        Assert.Contains("\"num_latent_tokens\":4", manifest.ModelConfig.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    public static TheoryData<string> RejectedRuns() => ["bad checkpoint", "empty input", "non-empty output", "output is the input", "bad batch size", "output is a file"];

    [Theory]
    [MemberData(nameof(RejectedRuns))]
    public async Task Tokenize_WhenRejected_ExitsWith2AndLeavesNothingBehind(string rejection)
    {
        var (images, checkpoint) = await WriteSampleAsync();
        var output = Path.Combine(folder, "tokens");
        var input = images;
        var extra = new List<string>();
        switch (rejection)
        {
            case "bad checkpoint":
                checkpoint = Path.Combine(folder, "garbage.pth");
                await File.WriteAllTextAsync(checkpoint, "garbage bytes here", Token);
                break;
            case "empty input":
                input = Directory.CreateDirectory(Path.Combine(folder, "empty")).FullName;
                break;
            case "non-empty output":
                Directory.CreateDirectory(output);
                await File.WriteAllTextAsync(Path.Combine(output, "notes.txt"), "mine", Token);
                break;
            case "output is the input":
                output = images;
                break;
            case "bad batch size":
                extra.AddRange(["--batch-size", "100000"]);
                break;
            case "output is a file":
                output = Path.Combine(folder, "a-file");
                await File.WriteAllTextAsync(output, "mine", Token);
                break;
        }
        var before = Snapshot(folder);

        var (exitCode, _, log) = await WorkerProcess.RunAsync("tokenize", ["tokenize", input, output, "--checkpoint", checkpoint, .. extra],
            NoEnvironment, Patience);

        Assert.True(exitCode == 2, $"tokenize exited with {exitCode}:\n{log}");
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(folder));
    }

    [Fact]
    public async Task Tokenize_InterruptedThenRetriedAtOnce_CompletesWithoutWaitingForTheDeadRunsLeases()
    {
        var (images, checkpoint) = await WriteSampleAsync(imagesPerClass: 40);
        var output = Path.Combine(folder, "tokens");
        await using (var run = WorkerProcess.Start("tokenize", ["tokenize", images, output, "--checkpoint", checkpoint,
            "--files-per-partition", "4", "--device", "cpu", "--verbose"], NoEnvironment))
        {
            Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(run.HasWritten("Committed job")), Patience),
                $"no partition was committed:\n{run.Log}");
            Assert.Equal(1, await run.InterruptAsync(TimeSpan.FromSeconds(60)));
        }
        var database = Path.Combine(output, "_wintok", "results.db");
        var jobId = (await ReadEmbeddedJobsAsync(database)).Single().Id;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("retry", ["jobs", "retry", jobId.ToString()[..8], "--db", database],
            NoEnvironment, Patience);

        Assert.True(exitCode == 0, $"retry exited with {exitCode}:\n{log}");
        // A lease is 2 minutes: a retry that waited for the interrupted run's leases would take that long.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(100), $"the retry took {clock.Elapsed}");
        var manifest = await DatasetManifest.ReadAsync(FileStores.Open(output, blobService: null), Token);
        Assert.Equal(120, manifest.Totals.Rows);
        Assert.Equal(JobStatus.Succeeded, (await ReadEmbeddedJobAsync(database, jobId)).Status);
    }

    [Fact]
    public async Task JobsList_WithNothingNamedAfterALocalRun_ShowsThatRunsJobAndSaysWhereItLives()
    {
        var (images, checkpoint) = await WriteSampleAsync();
        var output = Path.Combine(folder, "tokens");
        // A user of one machine: their own HOME, no servers configured.
        var user = new Dictionary<string, string>
        {
            ["HOME"] = Path.Combine(folder, "home"), ["WINTOK_POSTGRES"] = "", ["WINTOK_RABBITMQ"] = "", ["ResultsDatabase__ConnectionString"] = "",
        };
        var (tokenizeExit, tokenizeStdout, tokenizeLog) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", images, output, "--checkpoint", checkpoint, "--device", "cpu"], user, Patience);
        Assert.True(tokenizeExit == 0, tokenizeLog);

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("jobs", ["jobs", "list"], user, Patience);

        Assert.True(exitCode == 0, $"jobs list exited with {exitCode}:\n{log}");
        Assert.Contains(stdout, line => line.Contains(JobIdIn(tokenizeStdout).ToString()[..8], StringComparison.Ordinal));
        Assert.Contains(Path.Combine(output, "_wintok", "results.db"), log, StringComparison.Ordinal);
    }

    /// <summary>Every file and folder under <paramref name="root"/> with its size: what a rejected run must not change.</summary>
    private static List<string> Snapshot(string root) => [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
        .Select(path => File.Exists(path) ? $"{Path.GetRelativePath(root, path)} {new FileInfo(path).Length}" : Path.GetRelativePath(root, path) + "/")
        .Order(StringComparer.Ordinal)];

    /// <summary>`wintok sample` into the test's folder; returns the images folder and the checkpoint.</summary>
    private async Task<(string Images, string Checkpoint)> WriteSampleAsync(int imagesPerClass = 8)
    {
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("sample",
            ["sample", folder, "--images-per-class", imagesPerClass.ToString(CultureInfo.InvariantCulture)], NoEnvironment, Patience);
        Assert.True(exitCode == 0, $"sample exited with {exitCode}:\n{log}");
        Assert.Contains(stdout, line => line.Contains("RANDOM-INITIALISED", StringComparison.Ordinal));
        return (Path.Combine(folder, "images"), Path.Combine(folder, "random-tiny.safetensors"));
    }

    /// <summary>The id of "Job {id}: 3 partitions of ...", the first line `wintok tokenize` prints.</summary>
    internal static Guid JobIdIn(IReadOnlyList<string> stdout) =>
        Guid.Parse(stdout.First(line => line.StartsWith("Job ", StringComparison.Ordinal)).Split(' ', ':')[1], CultureInfo.InvariantCulture);

    private static async Task<IReadOnlyList<JobProgress>> ReadEmbeddedJobsAsync(string database)
    {
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={database}",
        }, builder => builder.AddResultsStore());
        await host.StartAsync(Token);
        try
        {
            return await host.Services.GetRequiredService<ResultsRepository>().ListJobsAsync(10, null, Token);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static async Task<JobProgress> ReadEmbeddedJobAsync(string database, Guid jobId)
    {
        using var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={database}",
        }, builder => builder.AddResultsStore());
        await host.StartAsync(Token);
        try
        {
            return await host.Services.GetRequiredService<ResultsRepository>().GetJobProgressAsync(jobId, Token)
                ?? throw new InvalidOperationException($"{database} has no job {jobId}");
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The problem on stderr as one line, and no stack trace anywhere.</summary>
    private static void AssertOneLineError(string log, string expectedStart)
    {
        Assert.Contains(log.Split('\n'), line => line.StartsWith("tokenize err: " + expectedStart, StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
    }
}
