using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WinTok.Results;

namespace WinTok.Dashboard.Tests;

/// <summary>
/// The real dashboard app on a loopback port of its own, over a fresh SQLite results database that holds one
/// tokenize job with a hostile item key. Every log line it writes is kept, with its structured values, so tests can
/// look for what must never be logged.
/// </summary>
internal sealed class DashboardServer : IAsyncDisposable
{
    /// <summary>The key of the recorded item failure: markup that would run script if it were not encoded.</summary>
    public const string HostileKey = "<img src=x onerror=alert(1)>.jpg";

    public const string HostileReason = "<script>alert('reason')</script> not an image";

    private readonly WebApplication app;
    private readonly string folder;

    private DashboardServer(WebApplication app, string folder, Guid jobId, LogSink logs)
    {
        this.app = app;
        this.folder = folder;
        JobId = jobId;
        Logs = logs;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true }) { BaseAddress = new Uri(address) };
    }

    public Guid JobId { get; }

    public HttpClient Client { get; }

    public LogSink Logs { get; }

    public IServiceProvider Services => app.Services;

    /// <summary>Starts the dashboard with <paramref name="actionToken"/> (none: read-only) over a database with one running job.</summary>
    public static async Task<DashboardServer> StartAsync(string? actionToken)
    {
        var folder = Path.Combine(Path.GetTempPath(), "wintok-dashboard-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var logs = new LogSink();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={Path.Combine(folder, "results.db")}",
            ["Dashboard:ActionToken"] = actionToken,
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddWinTokDashboard();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Logging.AddProvider(logs);
        var app = builder.Build();
        app.MapWinTokDashboard();
        await app.StartAsync(TestContext.Current.CancellationToken);
        var jobId = await RecordJobAsync(app.Services.GetRequiredService<ResultsRepository>());
        return new DashboardServer(app, folder, jobId, logs);
    }

    /// <summary>A running tokenize job: partition 0 committed with the hostile failure, partition 1 still pending.</summary>
    private static async Task<Guid> RecordJobAsync(ResultsRepository results)
    {
        var token = TestContext.Current.CancellationToken;
        var jobId = Guid.CreateVersion7();
        await results.CreateJobAsync(new NewJob(jobId, "tokenize", """{"input":"/data/<b>images</b>","output":"/data/tokens"}"""), token);
        await results.AddPartitionsAsync(jobId, [new NewPartition(0, "{}", 3), new NewPartition(1, "{}", 3)], token);
        await results.TryClaimPartitionAsync(jobId, 0, "test-worker", TimeSpan.FromMinutes(1), token);
        await results.CommitPartitionAsync(new PartitionCommit(jobId, 0, "test-worker", "shards/part-000000.parquet", 2, 100, "ab", 10, "{}"),
            [new ItemFailure(HostileKey, $"/data/{HostileKey}", HostileReason)], token);
        return jobId;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await app.StopAsync(CancellationToken.None);
        await app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (TestContext.Current.TestState?.Result == TestResult.Passed) Directory.Delete(folder, recursive: true);
    }
}

/// <summary>Keeps every log line, formatted and with its structured values.</summary>
internal sealed class LogSink : ILoggerProvider
{
    private readonly ConcurrentQueue<string> lines = new();

    public IReadOnlyCollection<string> Lines => lines;

    public ILogger CreateLogger(string categoryName) => new Sink(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Sink(LogSink owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(";", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            owner.lines.Enqueue($"{category}[{eventId.Id}] {formatter(state, exception)} | {values} | {exception}");
        }
    }
}
