using System.Diagnostics;
using System.Globalization;
using Azure.Storage.Blobs;
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
/// The distributed path through the CLI: `wintok submit tokenize` (a child process) records and publishes a job on the
/// real PostgreSQL and RabbitMQ; a worker host built in the test from the extensions `wintok worker` uses consumes it
/// and writes the dataset to Azurite; `wintok jobs show` reads the result.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class CliSubmitTests(ServicesFixture services) : IAsyncDisposable
{
    /// <summary>Queue prefix and container of this test class, so no other test's queues or blobs are touched.</summary>
    private const string Name = "wintok-cli-submit";

    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-cli-tests", Name);
    private IHost? worker;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask DisposeAsync()
    {
        if (worker is not null)
        {
            await worker.StopAsync(CancellationToken.None);
            worker.Dispose();
        }
    }

    [Fact]
    public async Task Submit_ConsumedByAWorker_EndsSucceededWithAVerifiedDatasetInBlobStorage()
    {
        await services.RequirePostgresAsync();
        await services.RequireRabbitMqAsync();
        await services.RequireAzuriteAsync();
        await services.ResetQueuesAsync($"{Name}.tokenize-partition", $"{Name}.tokenize-partition.dead");
        await services.ResetContainerAsync(Name);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        var (sampleExitCode, _, sampleLog) = await WorkerProcess.RunAsync("sample", ["sample", folder], Environment(), Patience);
        Assert.True(sampleExitCode == 0, $"sample exited with {sampleExitCode}:\n{sampleLog}");
        var output = $"az://{Name}/dataset";

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("submit",
            ["submit", "tokenize", Path.Combine(folder, "images"), output, "--checkpoint", Path.Combine(folder, "random-tiny.safetensors"),
                "--files-per-partition", "10"],
            Environment(), Patience);
        Assert.True(exitCode == 0, $"submit exited with {exitCode}:\n{log}");
        Assert.True(Guid.TryParse(stdout[0], out var jobId), $"the first stdout line is not a job id: {stdout[0]}");

        worker = await StartWorkerAsync();
        var results = worker.Services.GetRequiredService<ResultsRepository>();
        Assert.True(await ServicesFixture.EventuallyAsync(
            async () => (await results.GetJobAsync(jobId, Token))?.Status == JobStatus.Succeeded, Patience), "the job did not succeed in time");
        await worker.StopAsync(Token); // drained: the manifest is written by the handler that completed the job

        var dataset = FileStores.Open(output, new BlobServiceClient(services.Blob));
        var verification = await DatasetVerifier.VerifyAsync(dataset, Token);
        Assert.True(verification.IsValid, string.Join('\n', verification.Problems));
        Assert.Equal((3, 24L), (verification.ShardsChecked, verification.RowsChecked));
        var (showExitCode, showStdout, showLog) = await WorkerProcess.RunAsync("show", ["jobs", "show", jobId.ToString()], Environment(), Patience);
        Assert.True(showExitCode == 0, $"jobs show exited with {showExitCode}:\n{showLog}");
        Assert.Contains(showStdout, line => line.Contains("3 total, 3 committed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Worker_WhenStartedThenSentSigterm_WritesItsHealthFileThenRemovesItAndExitsWith0()
    {
        await services.RequirePostgresAsync();
        await services.RequireRabbitMqAsync();
        Directory.CreateDirectory(folder);
        var healthFile = Path.Combine(folder, "worker.healthy");
        File.Delete(healthFile);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(WorkerProcess.CliDll);
        start.ArgumentList.Add("worker");
        foreach (var (key, value) in Environment()) start.Environment[key] = value;
        start.Environment["Worker__HealthFile"] = healthFile;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start dotnet");
        var stderr = process.StandardError.ReadToEndAsync(Token);
        var stdout = process.StandardOutput.ReadToEndAsync(Token);
        try
        {
            Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(File.Exists(healthFile)), TimeSpan.FromMinutes(1)),
                "the worker wrote no health file");

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync(Token);
            }
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(Token);
            limit.CancelAfter(TimeSpan.FromMinutes(1));
            await process.WaitForExitAsync(limit.Token);

            Assert.True(process.ExitCode == 0, $"worker exited with {process.ExitCode}:\n{await stderr}");
            Assert.False(File.Exists(healthFile), "the stopped worker left its health file behind");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            TestContext.Current.TestOutputHelper?.WriteLine(await stdout + await stderr);
        }
    }

    /// <summary>What `wintok worker` adds to its host, minus the health file, on the test's queue prefix.</summary>
    private async Task<IHost> StartWorkerAsync()
    {
        var host = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Postgres",
            ["ResultsDatabase:ConnectionString"] = services.Postgres,
            ["JobQueue:ConnectionString"] = services.RabbitMq,
            ["JobQueue:QueuePrefix"] = Name,
            ["Storage:ConnectionString"] = services.Blob,
            ["Model:Device"] = "cpu",
            ["Worker:WorkerName"] = $"{Name}-worker",
        }, builder => builder.AddWinTokWorker(healthFile: false));
        await host.StartAsync(Token);
        return host;
    }

    /// <summary>The servers of the fixture and the test's queue prefix, for the CLI child processes.</summary>
    private Dictionary<string, string> Environment() => new()
    {
        ["WINTOK_POSTGRES"] = services.Postgres,
        ["WINTOK_RABBITMQ"] = services.RabbitMq,
        ["WINTOK_BLOB_CONNECTION"] = services.Blob,
        ["JobQueue__QueuePrefix"] = Name,
    };
}
