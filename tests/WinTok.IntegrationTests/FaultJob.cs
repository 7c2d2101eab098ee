using System.Text;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using SkiaSharp;
using TorchSharp;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;
using WinTok.Model;
using WinTok.Results;
using WinTok.Messaging;
using WinTok.Jobs;
using WinTok.Worker.Hosting;
using Xunit.Sdk;

namespace WinTok.IntegrationTests;

/// <summary>
/// One tokenize job run the way production runs it, for the fault tests: a corpus of small images on local disk (with
/// the corrupt files each test asks for), a tiny random checkpoint, <c>wintok submit</c> to PostgreSQL and RabbitMQ,
/// and real <c>wintok worker</c> child processes writing to Azurite. Each test gets its own queue prefix, container
/// and folder, named after it and reset before it starts (a failed run leaves them for a look); jobs are recorded in a
/// database of their own (<see cref="Database"/>). Disposing kills every worker still running.
/// </summary>
internal sealed class FaultJob : IAsyncDisposable
{
    /// <summary>Files per partition: small, so a job has enough partitions for a fault to land in the middle of it.</summary>
    public const int FilesPerPartition = 6;

    /// <summary>Longest a job may take; ten times what the longest takes on an idle 2-core machine.</summary>
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(4);

    /// <summary>
    /// A database of their own on the shared server: other test runs reset the default one (drop its schema) when they
    /// start, which must not pull the tables from under a job here.
    /// </summary>
    private const string Database = "wintok_faults";

    private readonly ServicesFixture services;
    private readonly string postgres;
    private readonly string folder;
    private readonly List<WorkerProcess> workers = [];
    private readonly StringBuilder events = new();
    private readonly IHost resultsHost;

    private FaultJob(ServicesFixture services, string name, string postgres, string blobConnection, IHost resultsHost)
    {
        this.services = services;
        this.postgres = postgres;
        Name = name;
        BlobConnection = blobConnection;
        this.resultsHost = resultsHost;
        folder = Path.Combine(Path.GetTempPath(), "wintok-faults", name);
    }

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>Queue prefix, container and folder name of the test.</summary>
    public string Name { get; }

    public string BlobConnection { get; }

    /// <summary>The work queue the workers consume; its dead letters are in <c>{WorkQueue}.dead</c>.</summary>
    public string WorkQueue => $"{Name}.tokenize-partition";

    public string Input => Path.Combine(folder, "images");

    public string Output => $"az://{Name}/dataset";

    public Guid JobId { get; private set; }

    /// <summary>Keys of the decodable images written (relative paths, as the corpus names them).</summary>
    public SortedSet<string> GoodKeys { get; } = new(StringComparer.Ordinal);

    /// <summary>Keys of the corrupt files written.</summary>
    public SortedSet<string> CorruptKeys { get; } = new(StringComparer.Ordinal);

    public ResultsRepository Results => resultsHost.Services.GetRequiredService<ResultsRepository>();

    /// <summary>
    /// Resets the test's queues, container and folder and writes its corpus: <paramref name="images"/> small JPEG and
    /// PNG images in two classes, the <paramref name="corrupt"/> files, and a tiny random checkpoint.
    /// <paramref name="blobConnection"/> is the Azurite to write to (default: the shared one).
    /// </summary>
    public static async Task<FaultJob> CreateAsync(ServicesFixture services, string name, int images,
        IReadOnlyList<CorruptFile> corrupt, string? blobConnection = null)
    {
        await services.RequireRabbitMqAsync();
        await services.RequirePostgresAsync();
        await services.RequireAzuriteAsync();
        await services.ResetQueuesAsync($"{name}.tokenize-partition", $"{name}.tokenize-partition.dead");
        var connection = blobConnection ?? services.Blob;
        await ResetContainerAsync(new BlobServiceClient(connection).GetBlobContainerClient(name));

        var postgres = await CreateDatabaseAsync(services.Postgres);
        var resultsHost = ServicesFixture.BuildHost(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Postgres",
            ["ResultsDatabase:ConnectionString"] = postgres,
        }, builder => builder.AddResultsStore());
        await resultsHost.StartAsync(Token); // migrates, as the workers will
        var job = new FaultJob(services, name, postgres, connection, resultsHost);
        if (Directory.Exists(job.folder))
        {
            Directory.Delete(job.folder, recursive: true);
        }
        job.WriteCorpus(images, corrupt);
        WriteCheckpoint(job.Checkpoint);
        return job;
    }

    private string Checkpoint => Path.Combine(folder, "tiny.safetensors");

    /// <summary><c>wintok submit tokenize</c>; remembers the job id it prints first.</summary>
    public async Task SubmitAsync()
    {
        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("submit",
            ["submit", "tokenize", Input, Output, "--checkpoint", Checkpoint, "--files-per-partition", FilesPerPartition.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            Environment(), TimeSpan.FromMinutes(1));
        events.AppendLine(log);
        if (exitCode != 0 || stdout.Count == 0 || !Guid.TryParse(stdout[0], out var jobId))
        {
            throw new XunitException($"wintok submit exited with {exitCode}:\n{log}");
        }
        JobId = jobId;
        Note($"submitted job {jobId}");
    }

    /// <summary>Starts <c>wintok worker</c> as a child process named <paramref name="name"/>.</summary>
    public WorkerProcess StartWorker(string name)
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

    /// <summary>Waits until <paramref name="count"/> partitions are committed (the job is then under way, not over).</summary>
    public async Task WaitForCommittedPartitionsAsync(int count)
    {
        if (!await ServicesFixture.EventuallyAsync(async () => (await Results.GetJobProgressAsync(JobId, Token))?.Committed >= count, JobTimeout))
        {
            throw new XunitException($"fewer than {count} partitions committed within {JobTimeout}");
        }
        var progress = (await Results.GetJobProgressAsync(JobId, Token))!;
        Note($"{progress.Committed} of {progress.Partitions} partitions committed");
    }

    /// <summary>How many partitions are committed and how many the job has.</summary>
    public async Task<(int Committed, int Partitions)> ProgressAsync()
    {
        var progress = (await Results.GetJobProgressAsync(JobId, Token))!;
        return (progress.Committed, progress.Partitions);
    }

    /// <summary>Waits for the job to leave queued/running, polling the results database, for at most <see cref="JobTimeout"/>.</summary>
    public async Task<JobProgress> WaitForJobEndAsync()
    {
        if (!await ServicesFixture.EventuallyAsync(async () =>
            (await Results.GetJobProgressAsync(JobId, Token))?.Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled, JobTimeout))
        {
            var progress = await Results.GetJobProgressAsync(JobId, Token);
            throw new XunitException($"job {JobId} still {progress?.Status} after {JobTimeout}: {progress?.Committed} of {progress?.Partitions} partitions committed");
        }
        var done = (await Results.GetJobProgressAsync(JobId, Token))!;
        Note($"job ended {done.Status}");
        return done;
    }

    /// <summary>
    /// The job succeeded; the manifest lists every partition once; the shards hold every good image exactly once and
    /// nothing else; the failure records, in the database and in the dataset, hold exactly the corrupt inputs, each
    /// with a reason; and the verifier finds no problem.
    /// </summary>
    public async Task AssertDatasetCompleteAsync()
    {
        var job = await WaitForJobEndAsync();
        Assert.Equal(JobStatus.Succeeded, job.Status);

        var dataset = FileStores.Open(Output, new BlobServiceClient(BlobConnection));
        var manifest = await DatasetManifest.ReadAsync(dataset, Token);
        Assert.Equal(Enumerable.Range(0, job.Partitions), manifest.Shards.Select(s => s.Partition));
        Assert.Equal(GoodKeys.Count, manifest.Totals.Rows);
        Assert.Equal(CorruptKeys.Count, manifest.Totals.Failures);

        var keys = new List<string>();
        var failures = new List<FailureRecord>();
        foreach (var shard in manifest.Shards)
        {
            await using (var reader = await TokenShardReader.OpenAsync(dataset, shard.Path, Token))
            {
                await foreach (var row in reader.ReadAllAsync(ShardColumns.None, Token))
                {
                    keys.Add(row.Key);
                }
            }
            failures.AddRange(await FailureFile.ReadAsync(dataset, shard.ErrorsPath, Token));
        }
        var duplicates = keys.GroupBy(k => k, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"{g.Key} x{g.Count()}").ToList();
        Assert.True(duplicates.Count == 0, $"keys in more than one row: {string.Join(", ", duplicates)}");
        Assert.Equal(GoodKeys, keys.Order(StringComparer.Ordinal));
        Assert.Equal(CorruptKeys, failures.Select(f => f.Key).Order(StringComparer.Ordinal));
        Assert.All(failures, f => Assert.False(string.IsNullOrWhiteSpace(f.Reason), $"{f.Key} has no reason"));

        var recorded = await Results.ListItemFailuresAsync(JobId, Token);
        Assert.Equal(CorruptKeys, recorded.Select(f => f.Key).Order(StringComparer.Ordinal));
        Assert.All(recorded, f => Assert.False(string.IsNullOrWhiteSpace(f.Reason), $"{f.Key} has no reason in the database"));

        var verification = await DatasetVerifier.VerifyAsync(dataset, Token);
        Assert.True(verification.IsValid, string.Join('\n', verification.Problems));
        Assert.Equal(GoodKeys.Count, verification.RowsChecked);
    }

    /// <summary>
    /// Runs <paramref name="test"/>; a failure comes back with what the test did and the last lines of every worker, so
    /// a CI failure can be read without rerunning it. The same logs go to the test output either way.
    /// </summary>
    public async Task WithLogsAsync(Func<Task> test)
    {
        try
        {
            await test();
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !Token.IsCancellationRequested)
        {
            throw new XunitException($"{exception.GetType().Name}: {exception.Message}\n\n--- what the test did ---\n{events}\n--- worker logs ---\n{Logs()}", exception);
        }
        finally
        {
            TestContext.Current.TestOutputHelper?.WriteLine(events.ToString());
            TestContext.Current.TestOutputHelper?.WriteLine(Logs());
        }
    }

    /// <summary>Notes a step of the test (with the time) for the failure message.</summary>
    public void Note(string step)
    {
        lock (events)
        {
            events.AppendLine($"{DateTime.UtcNow:HH:mm:ss.fff} test: {step}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in workers)
        {
            await worker.DisposeAsync();
        }
        await resultsHost.StopAsync(CancellationToken.None);
        resultsHost.Dispose();
    }

    private string Logs() => string.Join("\n\n", workers.Select(w => w.Log));

    /// <summary>What every child process gets: the servers, the CPU, small batches, a 10 s lease, the test's queue prefix.</summary>
    private Dictionary<string, string> Environment() => new()
    {
        ["WINTOK_RABBITMQ"] = services.RabbitMq,
        ["WINTOK_POSTGRES"] = postgres,
        ["WINTOK_BLOB_CONNECTION"] = BlobConnection,
        ["JobQueue__QueuePrefix"] = Name,
        ["Model__Device"] = "cpu",
        ["Model__BatchSize"] = "4",
        ["Worker__DecodeThreads"] = "1",
        ["Worker__Lease"] = "00:00:10",
        ["Checkpoints__CacheFolder"] = Path.Combine(folder, "checkpoint-cache"),
        ["DOTNET_gcServer"] = "0",
    };

    private void WriteCorpus(int images, IReadOnlyList<CorruptFile> corrupt)
    {
        string[] classes = ["dots", "bands"];
        for (var i = 0; i < images; i++)
        {
            var label = classes[i % classes.Length];
            var png = i % 4 == 3;
            var key = $"{label}/{label}-{i:D3}.{(png ? "png" : "jpg")}";
            var path = Path.Combine(Input, key);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, Image(i, png ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg));
            GoodKeys.Add(key);
        }
        foreach (var file in corrupt)
        {
            var key = $"{classes[0]}/{file.Name}";
            File.WriteAllBytes(Path.Combine(Input, key), file.Bytes);
            CorruptKeys.Add(key);
        }
    }

    /// <summary>A small image, different for each <paramref name="index"/>.</summary>
    public static byte[] Image(int index, SKEncodedImageFormat format)
    {
        var (width, height) = (index % 3) switch { 0 => (96, 64), 1 => (64, 96), _ => (80, 80) };
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColor.FromHsv(index * 37 % 360, 60, 80));
            using var paint = new SKPaint { Color = SKColor.FromHsv((index * 37 + 180) % 360, 80, 60), IsAntialias = true };
            canvas.DrawCircle(width * (index % 5 + 1) / 6f, height / 2f, 8 + index % 20, paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 85);
        return data.ToArray();
    }

    /// <summary>
    /// The smallest WinTok that keeps the real architecture (the <c>sample</c> verb's): a 2-layer, 64-wide encoder on
    /// 16-pixel patches of 256-pixel images, 4 codebooks, a 2-layer decoder. Random, fixed seed: tokens are meaningless
    /// but deterministic, and a partition takes about a second on one CPU core.
    /// </summary>
    private static void WriteCheckpoint(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var config = new WinTokConfig(
            new EncoderShape(HiddenSize: 64, Layers: 2, Heads: 4, IntermediateSize: 128, PatchSize: 16, ImageSize: 256),
            NumLatentTokens: 16, VocabSize: 1024, VocabWidth: 16, NumCodebooks: 4,
            DecoderDepth: 2, DecoderHeads: 4, DecoderHidden: 64, DecoderIntermediate: 128);
        torch.manual_seed(0);
        using var model = new WinTokModel(config);
        WinTokCheckpoint.Save(model, path);
    }

    /// <summary>Creates <paramref name="database"/> (default <see cref="Database"/>) if missing; returns the connection string for it.</summary>
    internal static async Task<string> CreateDatabaseAsync(string server, string database = Database)
    {
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server) { Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(Token);
            await using var exists = new NpgsqlCommand($"SELECT 1 FROM pg_database WHERE datname = '{database}'", connection);
            if (await exists.ExecuteScalarAsync(Token) is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE {database}", connection);
                try
                {
                    await create.ExecuteNonQueryAsync(Token);
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
                {
                    // created by a concurrent run
                }
            }
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = database }.ConnectionString;
    }

    private static async Task ResetContainerAsync(BlobContainerClient container)
    {
        await container.CreateIfNotExistsAsync(cancellationToken: Token);
        await foreach (var blob in container.GetBlobsAsync(cancellationToken: Token))
        {
            await container.DeleteBlobAsync(blob.Name, cancellationToken: Token);
        }
    }
}

/// <summary>A file in the corpus that is not a decodable image.</summary>
internal sealed record CorruptFile(string Name, byte[] Bytes)
{
    /// <summary>A real JPEG cut after its first 300 bytes.</summary>
    public static CorruptFile TruncatedJpeg { get; } = new("truncated.jpg", FaultJob.Image(1000, SKEncodedImageFormat.Jpeg)[..300]);

    /// <summary>Random bytes named .jpg.</summary>
    public static CorruptFile RandomBytes { get; } = new("noise.jpg", RandomBytesOf(4096));

    /// <summary>An empty .jpg.</summary>
    public static CorruptFile Empty { get; } = new("empty.jpg", []);

    /// <summary>All three.</summary>
    public static IReadOnlyList<CorruptFile> All { get; } = [TruncatedJpeg, RandomBytes, Empty];

    private static byte[] RandomBytesOf(int count)
    {
        var bytes = new byte[count];
        new Random(11).NextBytes(bytes);
        return bytes;
    }
}
