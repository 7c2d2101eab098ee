using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Parquet;
using WinTok.Data.Corpus;
using WinTok.Results;
using Xunit.Sdk;

namespace WinTok.IntegrationTests;

/// <summary>
/// `wintok submit evaluate` through the real PostgreSQL, RabbitMQ and Azurite, run by two `wintok worker` child
/// processes of which one is killed (SIGKILL) while it holds a partition, against an undisturbed `wintok evaluate` of
/// the same checkpoint, images, metrics, partitions and batch size: the numbers, the per-image rows and the files every
/// partition leaves must come out the same, and the results database must hold one evaluation. The kit is the one of
/// <see cref="CliEvaluateTests"/> (the `wintok sample` images, the reference's tiny checkpoint, formula weights).
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class DistributedEvaluationTests(ServicesFixture services) : IAsyncDisposable
{
    /// <summary>Queue prefix, container and folder of this class.</summary>
    private const string Name = "wintok-eval-distributed";

    /// <summary>The results database of this class on the shared server, emptied before each test.</summary>
    private const string Database = "wintok_evaluations";

    /// <summary>
    /// The metrics whose partials merge across partitions, minus the two that cost minutes on a CPU: rFID (InceptionV3 at
    /// 299 pixels on both sides, then a 2048-d matrix square root: 3.7 min for these 24 images on the shared 2-core test
    /// machine, against 36 s for all of these) and zero-shot (a 1000-class, 80-template classifier; its counts merge as
    /// plain sums).
    /// </summary>
    private const string Metrics = "psnr,ssim,lpips,usage";

    /// <summary>25 files (24 images, one corrupt) in 5 partitions of 3 batches: enough for a kill to land mid-job.</summary>
    private const int FilesPerPartition = 6;

    private const int BatchSize = 2;

    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-eval-distributed");
    private readonly List<WorkerProcess> workers = [];
    private readonly StringBuilder events = new();
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private IHost? resultsHost;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>Kills the workers still running; removes the test's folder when it passed (a failure leaves it for a look).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var worker in workers) await worker.DisposeAsync();
        if (resultsHost is not null)
        {
            await resultsHost.StopAsync(CancellationToken.None);
            resultsHost.Dispose();
        }
        if (Directory.Exists(folder) && TestContext.Current.TestState?.Result == TestResult.Passed) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task SubmitEvaluate_WhenAWorkerIsKilledHoldingAPartition_EndsWithTheUndisturbedRunsMetricsAndEveryImageOnce()
    {
        await services.RequirePostgresAsync();
        await services.RequireRabbitMqAsync();
        await services.RequireAzuriteAsync();
        await services.ResetQueuesAsync($"{Name}.evaluate-partition", $"{Name}.evaluate-partition.dead");
        await services.ResetContainerAsync(Name);
        var postgres = await ServicesFixture.CreateDatabaseAsync(services.Postgres, Database);
        await ServicesFixture.ResetDatabaseAsync(postgres);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        var kit = await EvaluationKit.WriteAsync(folder);
        Note("wrote the kit");

        try
        {
            // The undisturbed run: one process, one decode thread.
            var undisturbed = Path.Combine(folder, "undisturbed");
            var (exitCode, _, log) = await WorkerProcess.RunAsync("evaluate", [.. Arguments(kit, undisturbed)],
                Settings(kit, "undisturbed", decodeThreads: 1), Patience);
            Assert.True(exitCode == 0, $"the undisturbed evaluate exited with {exitCode}:\n{log}");
            Note("undisturbed evaluation done");

            // The distributed run: three decode threads per worker, so images reach the model in another order than they are
            // listed unless the handler restores it.
            var output = $"az://{Name}/evaluation";
            var environment = new Dictionary<string, string>(Settings(kit, "distributed", decodeThreads: 3))
            {
                ["WINTOK_POSTGRES"] = postgres,
                ["WINTOK_RABBITMQ"] = services.RabbitMq,
                ["WINTOK_BLOB_CONNECTION"] = services.Blob,
                ["JobQueue__QueuePrefix"] = Name,
                ["Worker__Lease"] = "00:00:10",
            };
            resultsHost = ServicesFixture.BuildHost(new Dictionary<string, string?>
            {
                ["ResultsDatabase:Provider"] = "Postgres",
                ["ResultsDatabase:ConnectionString"] = postgres,
            }, builder => builder.AddResultsStore());
            await resultsHost.StartAsync(Token); // migrates, as the CLI would
            var results = resultsHost.Services.GetRequiredService<ResultsRepository>();

            var (submitExit, submitted, submitLog) = await WorkerProcess.RunAsync("submit", ["submit", .. Arguments(kit, output)], environment, Patience);
            Assert.True(submitExit == 0 && submitted.Count > 0 && Guid.TryParse(submitted[0], out _), $"submit exited with {submitExit}:\n{submitLog}");
            var jobId = Guid.Parse(submitted[0]);
            Note($"submitted job {jobId}");

            var doomed = StartWorker("worker-a", environment);
            StartWorker("worker-b", environment);
            var held = await WaitForPartitionRunningOnAsync(results, jobId, "worker-a");
            await doomed.KillAsync();
            var progress = (await results.GetJobProgressAsync(jobId, Token))!;
            // Dead before its commit (the usual case; worker-a may have committed in the instant before the kill): then only
            // worker-b, once the lease has expired, can have committed the partition.
            var lost = (await results.GetPartitionAsync(jobId, held, Token))!.Status != PartitionStatus.Committed;
            Note($"killed worker-a (SIGKILL) holding partition {held} ({(lost ? "uncommitted" : "already committed")}); " +
                $"{progress.Committed} of {progress.Partitions} partitions committed");
            Assert.True(progress.Committed < progress.Partitions, "the kill came after the last commit");

            Assert.True(await ServicesFixture.EventuallyAsync(async () =>
                (await results.GetJobProgressAsync(jobId, Token))?.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, Patience),
                $"job {jobId} did not end within {Patience}");
            var job = (await results.GetJobProgressAsync(jobId, Token))!;
            var partitions = await results.ListPartitionsAsync(jobId, Token);
            Note($"job ended {job.Status}; partition {held} committed by {partitions[held].Worker} on attempt {partitions[held].Attempt}");
            Assert.Equal(JobStatus.Succeeded, job.Status);
            Assert.All(partitions, p => Assert.Equal(PartitionStatus.Committed, p.Status));
            if (lost) Assert.Equal(($"{Name}-worker-b", true), (partitions[held].Worker, partitions[held].Attempt > 1));

            var expected = FileStores.Open(undisturbed, null);
            var actual = FileStores.Open(output, new BlobServiceClient(services.Blob));
            await AssertSameMetricsAsync(expected, actual, jobId);
            await AssertEveryImageOnceAsync(expected, actual);
            await AssertSameFilesAsync(expected, actual, "_partials/");
            await AssertSameFilesAsync(expected, actual, "per_image/");
            await AssertOneEvaluationRecordedAsync(postgres, jobId, actual);
            Note("checked");
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !Token.IsCancellationRequested)
        {
            throw new XunitException($"{exception.GetType().Name}: {exception.Message}\n\n--- what the test did ---\n{events}\n--- worker logs ---\n{Logs()}",
                exception);
        }
        finally
        {
            TestContext.Current.TestOutputHelper?.WriteLine(events.ToString());
            TestContext.Current.TestOutputHelper?.WriteLine(Logs());
        }
    }

    /// <summary>metrics.json of both runs: the same metrics, images and failures, every value the same.</summary>
    private async Task AssertSameMetricsAsync(IFileStore expected, IFileStore actual, Guid jobId)
    {
        using var undisturbed = JsonDocument.Parse(await ReadAsync(expected, "metrics.json"));
        using var distributed = JsonDocument.Parse(await ReadAsync(actual, "metrics.json"));
        Note($"undisturbed: {undisturbed.RootElement.GetProperty("metrics")}");
        Note($"distributed: {distributed.RootElement.GetProperty("metrics")}");
        Assert.Equal(jobId, distributed.RootElement.GetProperty("job_id").GetGuid());
        foreach (var field in new[] { "images", "failures" })
            Assert.Equal(undisturbed.RootElement.GetProperty(field).GetInt64(), distributed.RootElement.GetProperty(field).GetInt64());
        Assert.Equal(24, distributed.RootElement.GetProperty("images").GetInt64());

        var want = Values(undisturbed);
        var got = Values(distributed);
        Assert.Equal(want.Keys.Order(StringComparer.Ordinal), got.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "lpips_alex", "lpips_vgg", "psnr", "ssim", "usage_entropy", "usage_percent", "usage_perplexity" },
            got.Keys.Order(StringComparer.Ordinal));
        // Exactly: both runs measure the same batches in the same order on the same device (their partial statistics are
        // byte for byte the same, AssertSameFilesAsync), and the merge is deterministic.
        foreach (var (name, value) in want)
        {
            Assert.True(double.IsFinite(value), $"{name} is {value}");
            Assert.True(got[name] == value, $"{name}: distributed {got[name]:R}, undisturbed {value:R}");
        }
    }

    /// <summary>The per-image Parquet files of the distributed run hold every image of the undisturbed run exactly once.</summary>
    private static async Task AssertEveryImageOnceAsync(IFileStore expected, IFileStore actual)
    {
        var want = await KeysAsync(expected);
        var got = await KeysAsync(actual);
        var duplicates = got.GroupBy(k => k, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"{g.Key} x{g.Count()}").ToList();
        Assert.True(duplicates.Count == 0, $"images in more than one row: {string.Join(", ", duplicates)}");
        Assert.Equal(24, want.Count);
        Assert.Equal(want.Order(StringComparer.Ordinal), got.Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// Every file under <paramref name="prefix"/> is byte for byte the undisturbed run's: each partition's outputs depend only
    /// on its inputs, which is what lets a retried partition find its dead predecessor's files identical (create-only).
    /// </summary>
    private static async Task AssertSameFilesAsync(IFileStore expected, IFileStore actual, string prefix)
    {
        var want = await ListAsync(expected, prefix);
        var got = await ListAsync(actual, prefix);
        Assert.Equal(want, got);
        foreach (var path in want)
        {
            var (undisturbed, distributed) = (await ReadAsync(expected, path), await ReadAsync(actual, path));
            Assert.True(undisturbed.AsSpan().SequenceEqual(distributed), $"{path} differs between the runs");
        }
    }

    /// <summary>The results database holds this one evaluation, with each metric once and the values of metrics.json.</summary>
    private static async Task AssertOneEvaluationRecordedAsync(string postgres, Guid jobId, IFileStore actual)
    {
        await using var connection = new NpgsqlConnection(postgres);
        await connection.OpenAsync(Token);
        var evaluations = (await connection.QueryAsync<(Guid JobId, long ImageCount)>(new CommandDefinition(
            "SELECT job_id, image_count FROM evaluations", cancellationToken: Token))).ToList();
        Assert.Equal(new[] { (jobId, 24L) }, evaluations);
        var recorded = (await connection.QueryAsync<(string Name, double Value)>(new CommandDefinition(
            "SELECT metric_name, metric_value FROM metrics WHERE job_id = @jobId ORDER BY metric_name", new { jobId }, cancellationToken: Token))).ToList();
        using var metrics = JsonDocument.Parse(await ReadAsync(actual, "metrics.json"));
        Assert.Equal(Values(metrics).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value)), recorded);
    }

    private WorkerProcess StartWorker(string name, Dictionary<string, string> environment)
    {
        var worker = WorkerProcess.Start(name, ["worker"], new Dictionary<string, string>(environment)
        {
            ["Worker__WorkerName"] = $"{Name}-{name}",
            ["Worker__HealthFile"] = Path.Combine(folder, $"{name}.healthy"),
        });
        workers.Add(worker);
        Note($"started {name}");
        return worker;
    }

    /// <summary>Waits until <paramref name="worker"/> holds a partition it has not committed; returns its index.</summary>
    private async Task<int> WaitForPartitionRunningOnAsync(ResultsRepository results, Guid jobId, string worker)
    {
        var running = -1;
        var found = await ServicesFixture.EventuallyAsync(async () =>
        {
            var partitions = await results.ListPartitionsAsync(jobId, Token);
            running = partitions.FirstOrDefault(p => p.Status == PartitionStatus.Running && p.Worker == $"{Name}-{worker}")?.Partition ?? -1;
            return running >= 0;
        }, Patience);
        Assert.True(found, $"{worker} never held a partition");
        Note($"{worker} holds partition {running}");
        return running;
    }

    /// <summary>`evaluate CHECKPOINT IMAGES --output OUTPUT` with the class's metrics, partitions and batch size.</summary>
    private static IEnumerable<string> Arguments(EvaluationKit kit, string output) =>
    [
        .. kit.Arguments(output, Metrics), "--files-per-partition", FilesPerPartition.ToString(CultureInfo.InvariantCulture),
        "--batch-size", BatchSize.ToString(CultureInfo.InvariantCulture),
    ];

    /// <summary>The kit's settings with a statistics cache of the run's own and the model settings both runs share.</summary>
    private Dictionary<string, string> Settings(EvaluationKit kit, string run, int decodeThreads) => new(kit.Environment)
    {
        ["Evaluation__StatisticsCache"] = Path.Combine(folder, $"statistics-{run}"),
        ["Model__Device"] = "cpu",
        ["Model__BatchSize"] = BatchSize.ToString(CultureInfo.InvariantCulture),
        ["Worker__DecodeThreads"] = decodeThreads.ToString(CultureInfo.InvariantCulture),
        ["Checkpoints__CacheFolder"] = Path.Combine(folder, $"checkpoint-cache-{run}"),
        ["DOTNET_gcServer"] = "0",
    };

    private static Dictionary<string, double> Values(JsonDocument metrics) =>
        metrics.RootElement.GetProperty("metrics").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());

    private static async Task<List<string>> KeysAsync(IFileStore store)
    {
        var keys = new List<string>();
        foreach (var path in await ListAsync(store, "per_image/"))
        {
            await using var stream = new MemoryStream(await ReadAsync(store, path));
            await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: Token);
            var field = reader.Schema.GetDataFields().Single(f => f.Name == "key");
            for (var group = 0; group < reader.RowGroupCount; group++)
            {
                using var rows = reader.OpenRowGroupReader(group);
                var column = new string?[rows.RowCount];
                await rows.ReadAsync(field, column.AsMemory(), cancellationToken: Token);
                keys.AddRange(column.Select(key => key ?? "(null)"));
            }
        }
        return keys;
    }

    private static async Task<List<string>> ListAsync(IFileStore store, string prefix)
    {
        var paths = new List<string>();
        await foreach (var file in store.ListAsync(prefix, Token)) paths.Add(file.Path);
        return [.. paths.Order(StringComparer.Ordinal)];
    }

    private static async Task<byte[]> ReadAsync(IFileStore store, string path)
    {
        await using var stream = await store.OpenReadAsync(path, Token);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy, Token);
        return copy.ToArray();
    }

    private void Note(string step)
    {
        lock (events) events.AppendLine(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:HH:mm:ss.fff} (+{clock.Elapsed.TotalSeconds:F1} s) test: {step}");
    }

    private string Logs() => string.Join("\n\n", workers.Select(w => w.Log));
}
