using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using WinTok.Results;
using Xunit.Sdk;

namespace WinTok.IntegrationTests;

/// <summary>
/// A training run through the queue the way production runs it: `wintok sample`'s tiny kit, `wintok submit train` to
/// PostgreSQL and RabbitMQ, and real `wintok worker` child processes. The run's worker is killed (SIGKILL) after its
/// first checkpoint; the other worker must resume it from that checkpoint and end with exactly the losses of a run that
/// was never disturbed. Its own queue prefix, database and folder.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class TrainJobTests(ServicesFixture services) : IAsyncDisposable
{
    private const string Name = "wintok-train";
    private const string Database = "wintok_train";

    /// <summary>Longest one run may take; several times what it takes on an idle 2-core machine.</summary>
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(6);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-train-tests");
    private readonly List<WorkerProcess> workers = [];
    private readonly StringBuilder events = new();
    private string postgres = "";
    private IHost? resultsHost;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private ResultsRepository Results => resultsHost!.Services.GetRequiredService<ResultsRepository>();

    private TrainingMetricsRepository Metrics => resultsHost!.Services.GetRequiredService<TrainingMetricsRepository>();

    [Fact]
    public async Task TrainRun_WhenItsWorkerIsKilledAfterACheckpoint_AnotherResumesAndEndsWithTheLossesOfAnUndisturbedRun()
    {
        await services.RequireRabbitMqAsync();
        await services.RequirePostgresAsync();
        await services.ResetQueuesAsync([.. new[] { "train-run", "tokenize-partition", "evaluate-partition" }.SelectMany(q => new[] { $"{Name}.{q}", $"{Name}.{q}.dead" })]);
        postgres = await ServicesFixture.CreateDatabaseAsync(services.Postgres, Database);
        resultsHost = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Postgres",
            ["ResultsDatabase:ConnectionString"] = postgres,
        }, builder => builder.AddResultsStore());
        await resultsHost.StartAsync(Token); // migrates, as the workers will
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        var (sampleExit, _, sampleLog) = await WorkerProcess.RunAsync("sample", ["sample", folder], Environment(), TimeSpan.FromMinutes(2));
        Assert.True(sampleExit == 0, $"sample exited with {sampleExit}:\n{sampleLog}");

        try
        {
            var first = StartWorker("worker-a");
            var undisturbed = await SubmitAsync("undisturbed");
            await WaitForAsync(undisturbed, JobStatus.Succeeded);

            var disturbed = await SubmitAsync("disturbed");
            Assert.True(await ServicesFixture.EventuallyAsync(async () =>
                (await Results.ListPartitionsAsync(disturbed, Token)).Single().Worker == $"{Name}-worker-a", RunTimeout), "worker-a never took the run");
            StartWorker("worker-b");
            var checkpoint = Path.Combine(Output("disturbed"), "ckpt-ep0-iter1.pth");
            Assert.True(await ServicesFixture.EventuallyAsync(() => Task.FromResult(File.Exists(checkpoint)), RunTimeout), $"no {checkpoint} in time");
            await first.KillAsync();
            Note($"killed worker-a (SIGKILL) after {Path.GetFileName(checkpoint)}");
            Assert.False(File.Exists(Path.Combine(Output("disturbed"), "ckpt-last.pth")), "the run ended before its worker was killed: nothing was resumed");
            Assert.Equal(JobStatus.Running, (await Results.GetJobAsync(disturbed, Token))!.Status);

            await WaitForAsync(disturbed, JobStatus.Succeeded);
            var partition = (await Results.ListPartitionsAsync(disturbed, Token)).Single();
            Assert.Equal($"{Name}-worker-b", partition.Worker);
            Assert.True(partition.Attempt >= 2, $"the run was claimed {partition.Attempt} time(s); the resume should have claimed it again");
            // Resumed, not restarted (a restart would end with the same losses too, the run being deterministic).
            Assert.Contains(workers[1].Log.Split('\n'), line => line.Contains($"Resumed job {disturbed} from", StringComparison.Ordinal)
                && line.Contains("ckpt-ep0-iter", StringComparison.Ordinal));

            var expected = await Metrics.ListAsync(undisturbed, null, Token);
            var actual = await Metrics.ListAsync(disturbed, null, Token);
            static Dictionary<(long, string), double> Losses(IEnumerable<TrainingMetric> rows) =>
                rows.Where(r => r.Name != "images_per_second").ToDictionary(r => (r.Iteration, r.Name), r => r.Value);
            var last = expected.Max(r => r.Iteration);
            Assert.Equal(6L, last); // 25 images in batches of 4: 7 iterations
            Assert.Equal(Losses(expected.Where(r => r.Iteration == last)), Losses(actual.Where(r => r.Iteration == last)));
            Assert.Equal(Losses(expected), Losses(actual));
            Assert.True(File.Exists(Path.Combine(Output("disturbed"), "ckpt-last.pth")));
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(Output("disturbed"), "tensorboard"), "events.out.tfevents.*"));

            // Cancelled mid-run, the run stops after writing a checkpoint of where it was; `jobs retry` continues it there.
            // (Cancelled through the database as `wintok jobs cancel` does, at once, and over sixteen epochs: its worker
            // notices within five seconds, and the run must still be going by then; four epochs took 4.6 s on the CPU.)
            var cancelled = await SubmitAsync("cancelled", epochs: 16);
            Assert.True(await ServicesFixture.EventuallyAsync(async () => await Metrics.LatestAsync(cancelled, Token) is not null, RunTimeout),
                "the run to cancel recorded no iteration in time");
            Assert.True(await Results.CancelJobAsync(cancelled, Token));
            Note("cancelled the run");
            Assert.True(await ServicesFixture.EventuallyAsync(async () =>
                (await Results.ListPartitionsAsync(cancelled, Token)).Single().Status == PartitionStatus.Pending, RunTimeout), "the cancelled run was not given back");
            Note($"given back; checkpoints: {string.Join(", ", Directory.GetFiles(Output("cancelled"), "ckpt-*.pth").Select(Path.GetFileName))}");
            Assert.Contains(workers[1].Log.Split('\n'), line => line.Contains($"Job {cancelled} stopped at iteration", StringComparison.Ordinal));
            Assert.False(File.Exists(Path.Combine(Output("cancelled"), "ckpt-last.pth")), "the run ended before the cancel landed: nothing was stopped");
            await CliAsync("retry", ["jobs", "retry", cancelled.ToString()]);
            await WaitForAsync(cancelled, JobStatus.Succeeded);
            Assert.Contains(workers[1].Log.Split('\n'), line => line.Contains($"Resumed job {cancelled} from", StringComparison.Ordinal));
            var recorded = await Metrics.ListAsync(cancelled, "Lnll", Token);
            Assert.Equal(Enumerable.Range(0, 16 * 7).Select(i => (long)i), recorded.Select(r => r.Iteration)); // 16 epochs of 7, each once
        }
        catch (Exception e) when (e is not OperationCanceledException || !Token.IsCancellationRequested)
        {
            throw new XunitException($"{e.GetType().Name}: {e.Message}\n\n--- what the test did ---\n{events}\n--- worker logs ---\n{Logs()}", e);
        }
        finally
        {
            TestContext.Current.TestOutputHelper?.WriteLine(events.ToString());
            TestContext.Current.TestOutputHelper?.WriteLine(Logs());
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in workers) await worker.DisposeAsync();
        if (resultsHost is not null)
        {
            await resultsHost.StopAsync(CancellationToken.None);
            resultsHost.Dispose();
        }
    }

    private string Output(string run) => Path.Combine(folder, "runs", run);

    /// <summary>`wintok sample`'s train.json for <paramref name="epochs"/>, checkpoints every 2 iterations, into runs/NAME; then `wintok submit train`.</summary>
    private async Task<Guid> SubmitAsync(string run, int epochs = 1)
    {
        var config = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(await File.ReadAllTextAsync(Path.Combine(folder, "train.json"), Token))!;
        var changed = config.ToDictionary(p => p.Key, p => (object)p.Value);
        changed["epoch"] = epochs;
        changed["save_every"] = 2;
        changed["output"] = Output(run);
        var path = Path.Combine(folder, $"{run}.json");
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(changed), Token);
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("submit", ["submit", "train", path], Environment(), TimeSpan.FromMinutes(2));
        events.AppendLine(log);
        if (exitCode != 0 || stdout.Count == 0 || !Guid.TryParse(stdout[0], out var jobId))
            throw new XunitException($"wintok submit train exited with {exitCode}:\n{log}");
        Note($"submitted {run} as job {jobId}");
        return jobId;
    }

    private async Task CliAsync(string name, IReadOnlyList<string> arguments)
    {
        var (exitCode, _, log) = await WorkerProcess.RunAsync(name, arguments, Environment(), TimeSpan.FromMinutes(2));
        events.AppendLine(log);
        if (exitCode != 0) throw new XunitException($"wintok {string.Join(' ', arguments)} exited with {exitCode}:\n{log}");
        Note($"ran wintok {string.Join(' ', arguments)}");
    }

    private async Task WaitForAsync(Guid jobId, string status)
    {
        if (!await ServicesFixture.EventuallyAsync(async () => (await Results.GetJobAsync(jobId, Token))?.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, RunTimeout))
            throw new XunitException($"job {jobId} did not end within {RunTimeout}");
        var job = (await Results.GetJobAsync(jobId, Token))!;
        Note($"job {jobId} ended {job.Status}");
        Assert.True(job.Status == status, $"job {jobId} ended {job.Status}: {job.Error}");
    }

    private WorkerProcess StartWorker(string name)
    {
        var environment = new Dictionary<string, string>(Environment())
        {
            ["Worker__WorkerName"] = $"{Name}-{name}",
            ["Worker__HealthFile"] = Path.Combine(folder, $"{name}.healthy"),
        };
        var worker = WorkerProcess.Start(name, ["worker"], environment);
        workers.Add(worker);
        Note($"started {name}");
        return worker;
    }

    /// <summary>The servers, the CPU, a short lease (a killed worker's run is free again in seconds), the test's queue prefix.</summary>
    private Dictionary<string, string> Environment() => new()
    {
        ["WINTOK_RABBITMQ"] = services.RabbitMq,
        ["WINTOK_POSTGRES"] = postgres,
        ["JobQueue__QueuePrefix"] = Name,
        ["Model__Device"] = "cpu",
        ["Worker__Lease"] = "00:00:03",
        ["Logging__LogLevel__Default"] = "Information",
    };

    private void Note(string step)
    {
        lock (events) events.AppendLine($"{DateTime.UtcNow:HH:mm:ss.fff} test: {step}");
    }

    private string Logs() => string.Join("\n\n", workers.Select(w => w.Log));
}
