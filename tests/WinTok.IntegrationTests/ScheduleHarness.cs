using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using RabbitMQ.Client;
using WinTok.Contracts;
using WinTok.Jobs;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Schedules;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.TestSupport;
using WinTok.Worker.Hosting;

namespace WinTok.IntegrationTests;

/// <summary>
/// Scheduler replicas as `wintok scheduler` composes them (results store, job queue, job control, checkpoint inspector,
/// schedules), in this process on one <see cref="FakeTimeProvider"/>, against a PostgreSQL database of their own
/// (<c>wintok_schedules</c>, emptied before each test) and, where a test asks, RabbitMQ under the test's queue prefix.
/// Checkpoints are copies of the tiny reference checkpoint under training names, each made distinct by a zip comment
/// so its content hash differs; the dataset is a folder of three small PNGs. Disposing stops every replica.
/// </summary>
internal sealed class ScheduleHarness : IAsyncDisposable
{
    private const string Database = "wintok_schedules";

    /// <summary>A 1x1 PNG: planning lists the dataset, it does not decode it.</summary>
    private static readonly byte[] Png = Convert.FromBase64String(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==");

    private readonly ServicesFixture services;
    private readonly List<IHost> hosts = [];

    private ScheduleHarness(ServicesFixture services, string name, string? postgres)
    {
        this.services = services;
        Name = name;
        Postgres = postgres;
        Folder = Path.Combine(Path.GetTempPath(), "wintok-schedules", name);
        // Midnight two days ahead of the real clock, so every file written now has settled by the fake clock's time.
        Clock = new FakeTimeProvider(new DateTimeOffset(DateTime.UtcNow.Date.AddDays(2), TimeSpan.Zero));
    }

    public static CancellationToken Token => TestContext.Current.CancellationToken;

    public string Name { get; }

    /// <summary>The test's PostgreSQL database, or null when the replicas share a SQLite file (one machine).</summary>
    public string? Postgres { get; }

    public string SqliteFile => Path.Combine(Folder, "results.db");

    public string Folder { get; }

    public FakeTimeProvider Clock { get; }

    public CapturedLogs Logs { get; } = new();

    public string Checkpoints => Path.Combine(Folder, "checkpoints");

    /// <summary>The tiny checkpoint's args name its encoder by a local folder; its shape comes with the fixture (the HF vision config).</summary>
    private static ModelChoice TinyModel { get; } = new(EncoderConfig: System.Text.Json.Nodes.JsonNode.Parse(
        File.ReadAllText(TestFixtures.File("reference", "tiny.config.json")))!["encoder_config"]!.ToJsonString());

    public string Dataset => Path.Combine(Folder, "dataset");

    public string QueuePrefix => $"sched-{Name.ToLowerInvariant()}";

    /// <param name="provider"><c>Postgres</c> (the servers) or <c>Sqlite</c> (the embedded defaults).</param>
    public static async Task<ScheduleHarness> CreateAsync(ServicesFixture services, string name, string provider = "Postgres")
    {
        string? postgres = null;
        if (provider == "Postgres")
        {
            await services.RequirePostgresAsync();
            postgres = await ResetDatabaseAsync(services.Postgres);
        }
        var harness = new ScheduleHarness(services, name, postgres);
        if (Directory.Exists(harness.Folder)) Directory.Delete(harness.Folder, recursive: true);
        Directory.CreateDirectory(harness.Checkpoints);
        Directory.CreateDirectory(harness.Dataset);
        for (var i = 0; i < 3; i++) await File.WriteAllBytesAsync(Path.Combine(harness.Dataset, $"image-{i}.png"), Png, Token);
        return harness;
    }

    /// <summary>
    /// A started scheduler replica named <paramref name="instance"/>. <paramref name="publisher"/> replaces the evaluate
    /// partition publisher (e.g. one that crashes); <paramref name="rabbitMq"/> publishes to the real broker instead of
    /// an in-process queue.
    /// </summary>
    public async Task<IHost> StartReplicaAsync(string instance, IPartitionPublisher? publisher = null, bool rabbitMq = false)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = Postgres is null ? "Sqlite" : "Postgres",
            ["ResultsDatabase:ConnectionString"] = Postgres ?? $"Data Source={SqliteFile}",
            ["JobQueue:Transport"] = rabbitMq ? "RabbitMq" : "InProcess",
            ["JobQueue:ConnectionString"] = services.RabbitMq,
            ["JobQueue:QueuePrefix"] = QueuePrefix,
            ["Scheduler:InstanceName"] = instance,
            ["Scheduler:CheckpointSettleTime"] = "00:00:00",
            ["Checkpoints:CacheFolder"] = Path.Combine(Folder, "cache"),
            // Retries wait on the fake clock: no delay, so they happen at once.
            ["Resilience:Webhook:BaseDelay"] = "00:00:00",
            ["Resilience:Webhook:MaxRetryAttempts"] = "3",
        };
        var host = ServicesFixture.BuildHost(settings, builder =>
        {
            builder.Services.AddSingleton<TimeProvider>(Clock);
            builder.Logging.AddProvider(Logs);
            if (publisher is not null) builder.Services.AddKeyedSingleton(EvaluateJobSpec.JobKind, publisher);
            builder.AddResultsStore();
            builder.AddJobQueue();
            builder.AddJobControl();
            builder.AddCheckpointInspector();
            builder.AddEvaluationSchedules(runScheduler: false);
        });
        await host.StartAsync(Token); // migrates
        hosts.Add(host);
        return host;
    }

    /// <summary>Stops and disposes a replica, as a process that ends would.</summary>
    public async Task StopAsync(IHost host)
    {
        await host.StopAsync(CancellationToken.None);
        host.Dispose();
        hosts.Remove(host);
    }

    /// <summary>
    /// A copy of the tiny reference checkpoint at <paramref name="relativePath"/> under <see cref="Checkpoints"/>, with a
    /// zip comment naming it, so each copy is a different file (hash) that reads the same.
    /// </summary>
    public async Task<string> WriteCheckpointAsync(string relativePath)
    {
        var bytes = (await File.ReadAllBytesAsync(TestFixtures.File("reference", "tiny.pth"), Token)).ToList();
        // The end-of-central-directory record closes the file; its last two bytes are the comment's length (here 0).
        Assert.Equal(0x06054b50, BitConverter.ToInt32([.. bytes.Skip(bytes.Count - 22).Take(4)]));
        var comment = Encoding.ASCII.GetBytes(relativePath);
        bytes[^2] = (byte)comment.Length;
        bytes[^1] = (byte)(comment.Length >> 8);
        bytes.AddRange(comment);
        var path = Path.Combine(Checkpoints, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllBytesAsync(path, [.. bytes], Token);
        return path;
    }

    /// <summary>Adds a schedule evaluating PSNR and SSIM (no weight files needed) of <paramref name="target"/> on the test's dataset.</summary>
    public async Task AddScheduleAsync(IHost host, string name, string mode, string target, string cron = "0 3 * * *",
        string missed = MissedSlotPolicy.RunOnce, string? baseline = null, IEnumerable<string>? thresholds = null, string? webhook = null)
    {
        var evaluation = new ScheduledEvaluation(Dataset, Path.Combine(Folder, "evaluations"), ["psnr", "ssim"], TinyModel, null, null,
            EvaluationPrecision.Float32, "tiny-set", null, 10);
        Assert.True(await host.Services.GetRequiredService<SchedulesRepository>().AddAsync(new NewSchedule(name, cron, "Etc/UTC", mode, target,
            evaluation.ToJson(), missed, baseline, ScheduleDefinition.ThresholdsToJson(MetricThresholds.Parse(thresholds ?? [])), webhook, false), Token));
    }

    /// <summary>Moves the fake clock to <paramref name="day"/> days after its start at <paramref name="hour"/>:<paramref name="minute"/> UTC.</summary>
    public void SetClock(int day, int hour, int minute = 0)
    {
        var start = new DateTimeOffset(DateTime.UtcNow.Date.AddDays(2), TimeSpan.Zero);
        var target = start.AddDays(day).AddHours(hour).AddMinutes(minute);
        if (target > Clock.GetUtcNow()) Clock.SetUtcNow(target);
    }

    /// <summary>The evaluate jobs recorded, oldest first, with the checkpoint each evaluates.</summary>
    public async Task<IReadOnlyList<(Guid Id, string Checkpoint)>> JobsAsync(IHost host)
    {
        var results = host.Services.GetRequiredService<ResultsRepository>();
        var jobs = new List<(DateTimeOffset, Guid, string)>();
        foreach (var job in await results.ListJobsAsync(1000, null, Token))
        {
            var record = (await results.GetJobAsync(job.Id, Token))!;
            if (record.Kind == EvaluateJobSpec.JobKind) jobs.Add((record.CreatedAt, record.Id, EvaluateJobSpec.FromJson(record.SpecJson).Checkpoint.Location));
        }
        return [.. jobs.OrderBy(j => j.Item1).ThenBy(j => j.Item2).Select(j => (j.Item2, j.Item3))];
    }

    /// <summary>Every recorded slot as (schedule, time, outcome, jobs), oldest first.</summary>
    public async Task<IReadOnlyList<SlotRecord>> SlotsAsync(IHost host, string schedule) =>
        [.. (await host.Services.GetRequiredService<SchedulesRepository>().ListSlotsAsync(schedule, 1000, Token)).Reverse()];

    /// <summary>Messages waiting in a replica's in-process evaluate queue.</summary>
    public static int InProcessMessages(IHost host) => host.Services.GetRequiredService<InProcessJobQueue<EvaluatePartition>>().Count;

    /// <summary>Messages in the test's RabbitMQ evaluate queue.</summary>
    public async Task<uint> BrokerMessagesAsync()
    {
        var factory = new ConnectionFactory { Uri = new Uri(services.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(Token);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: Token);
        return (await channel.QueueDeclarePassiveAsync($"{QueuePrefix}.evaluate-partition", Token)).MessageCount;
    }

    public Task ResetQueuesAsync() =>
        services.ResetQueuesAsync($"{QueuePrefix}.evaluate-partition", $"{QueuePrefix}.evaluate-partition.dead");

    public async ValueTask DisposeAsync()
    {
        foreach (var host in hosts.ToList()) await StopAsync(host);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    }

    /// <summary>The test's own database on the shared server, emptied: other test classes reset the default one.</summary>
    private static async Task<string> ResetDatabaseAsync(string server)
    {
        var database = await ServicesFixture.CreateDatabaseAsync(server, Database);
        await ServicesFixture.ResetDatabaseAsync(database);
        return database;
    }
}

/// <summary>Every log line of the replicas (message and exception), for checks such as "no secret was logged" (the test output has them too).</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, int EventId, string Text)> lines = new();
    public IReadOnlyList<(LogLevel Level, int EventId, string Text)> Lines => [.. lines];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs logs, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            logs.lines.Enqueue((logLevel, eventId.Id, $"{category}: {formatter(state, exception)} {exception}"));
        }
    }
}

/// <summary>An evaluate publisher that fails as a process killed between the slot's commit and its publish would.</summary>
internal sealed class CrashingPublisher : IPartitionPublisher
{
    public int Calls { get; private set; }

    public Task PublishAsync(Guid jobId, IReadOnlyCollection<int> partitions, int attempt, CancellationToken cancellationToken)
    {
        Calls++;
        throw new InvalidOperationException("simulated crash between the slot's commit and its publish");
    }
}
