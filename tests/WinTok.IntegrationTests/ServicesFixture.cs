using System.Diagnostics;
using System.Net.Sockets;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;

namespace WinTok.IntegrationTests;

[CollectionDefinition(Name)]
public sealed class ServicesCollection : ICollectionFixture<ServicesFixture>
{
    public const string Name = "services";
}

/// <summary>
/// The real RabbitMQ, PostgreSQL and Azurite started by deploy/services.sh. Connection strings come from
/// WINTOK_RABBITMQ, WINTOK_POSTGRES and WINTOK_BLOB_CONNECTION (deploy/services.env), defaulting to the script's ports.
/// A server that does not answer skips the test locally and fails it when CI is set. Tests reset what they use
/// before they start, so a failed test leaves its state behind for a look.
/// </summary>
public sealed class ServicesFixture
{
    public string RabbitMq { get; } = Environment.GetEnvironmentVariable("WINTOK_RABBITMQ") ?? "amqp://guest:guest@127.0.0.1:5673/";

    public string Postgres { get; } = Environment.GetEnvironmentVariable("WINTOK_POSTGRES") ?? "Host=127.0.0.1;Port=5433;Username=postgres;Database=wintok";

    public string Blob { get; } = Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")
        ?? "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    /// <summary>deploy/services.sh of this checkout, for the tests that stop and start a server.</summary>
    public static string ServicesScript { get; } = FindServicesScript();

    public async Task RequireRabbitMqAsync()
    {
        var uri = new Uri(RabbitMq);
        await RequireAsync("RabbitMQ", uri.Host, uri.Port);
    }

    public async Task RequirePostgresAsync()
    {
        var builder = new NpgsqlConnectionStringBuilder(Postgres);
        await RequireAsync("PostgreSQL", builder.Host ?? "127.0.0.1", builder.Port);
    }

    public async Task RequireAzuriteAsync()
    {
        var endpoint = new BlobServiceClient(Blob).Uri;
        await RequireAsync("Azurite", endpoint.Host, endpoint.Port);
    }

    /// <summary>Drops every table of the test database (the schema is recreated by the migrator under test).</summary>
    public async Task ResetPostgresAsync()
    {
        // Unpooled: a pooled connection may predate a server restart by another test.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Postgres) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand("DROP SCHEMA public CASCADE; CREATE SCHEMA public;", connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Deletes the queues of <paramref name="queues"/> so the test starts from empty ones.</summary>
    public async Task ResetQueuesAsync(params string[] queues)
    {
        var factory = new ConnectionFactory { Uri = new Uri(RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(TestContext.Current.CancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: TestContext.Current.CancellationToken);
        foreach (var queue in queues)
        {
            await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false, cancellationToken: TestContext.Current.CancellationToken);
        }
    }

    /// <summary>An emptied container named for the test.</summary>
    public async Task<BlobContainerClient> ResetContainerAsync(string name)
    {
        var container = new BlobServiceClient(Blob).GetBlobContainerClient(name);
        await container.CreateIfNotExistsAsync(cancellationToken: TestContext.Current.CancellationToken);
        await foreach (var blob in container.GetBlobsAsync(cancellationToken: TestContext.Current.CancellationToken))
        {
            await container.DeleteBlobAsync(blob.Name, cancellationToken: TestContext.Current.CancellationToken);
        }
        return container;
    }

    /// <summary>A host with only the given settings (no environment variables), logging to the test output.</summary>
    public static IHost BuildHost(IDictionary<string, string?> settings, Action<IHostApplicationBuilder> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Test" });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddProvider(new TestOutputLoggerProvider());
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = TimeSpan.FromSeconds(30));
        configure(builder);
        return builder.Build();
    }

    /// <summary>
    /// Runs deploy/services.sh with <paramref name="arguments"/> (e.g. "restart rabbitmq"); with
    /// <paramref name="privateSet"/>, on the private set of servers under /tmp/wintok-services-faults instead of the
    /// shared one, so stopping a server there disturbs no other test project running at the same time.
    /// </summary>
    public static async Task RunServicesScriptAsync(string arguments, bool privateSet = false)
    {
        var start = new ProcessStartInfo("bash", $"{ServicesScript} {arguments}") { RedirectStandardError = true, RedirectStandardOutput = true };
        if (privateSet)
        {
            start.Environment["WINTOK_SERVICES_DIR"] = PrivateServicesDirectory;
            start.Environment["WINTOK_SERVICES_ENV_FILE"] = Path.Combine(PrivateServicesDirectory, "services.env");
            // Fixed ports of their own, clear of the shared set's preferred ones.
            start.Environment["WINTOK_RABBITMQ_PORT"] = "5693";
            start.Environment["WINTOK_POSTGRES_PORT"] = "5453";
            start.Environment["WINTOK_AZURITE_PORT"] = "10020";
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start bash");
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        TestContext.Current.TestOutputHelper?.WriteLine(await stderr);
        Assert.True(process.ExitCode == 0, $"services.sh {arguments} exited with {process.ExitCode}: {await stderr}");
    }

    /// <summary>
    /// Starts (if needed) an Azurite of the private set and returns its connection string, for tests that stop it:
    /// the shared Azurite stays up for the other test projects.
    /// </summary>
    public static async Task<string> StartPrivateAzuriteAsync()
    {
        await RunServicesScriptAsync("start-one azurite", privateSet: true);
        var line = File.ReadAllLines(Path.Combine(PrivateServicesDirectory, "services.env"))
            .Single(l => l.StartsWith("export WINTOK_BLOB_CONNECTION=", StringComparison.Ordinal));
        return line["export WINTOK_BLOB_CONNECTION=".Length..].Trim('\'');
    }

    private static string PrivateServicesDirectory => Path.Combine(Path.GetTempPath(), "wintok-services-faults");

    /// <summary>Polls <paramref name="condition"/> until true or <paramref name="timeout"/> passes.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (await condition())
            {
                return true;
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        return await condition();
    }

    private static async Task RequireAsync(string name, string host, int port)
    {
        using var client = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await client.ConnectAsync(host, port, timeout.Token);
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException)
        {
            var message = $"{name} is not reachable at {host}:{port} (run: bash deploy/services.sh start && source deploy/services.env)";
            if (Environment.GetEnvironmentVariable("CI") is { Length: > 0 })
            {
                Assert.Fail(message);
            }
            Assert.Skip(message);
        }
    }

    private static string FindServicesScript()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var script = Path.Combine(directory.FullName, "deploy", "services.sh");
            if (File.Exists(script))
            {
                return script;
            }
        }
        return "deploy/services.sh";
    }
}

/// <summary>Host logs into the current test's output, so a failure shows what the worker did.</summary>
internal sealed class TestOutputLoggerProvider : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new TestOutputLogger(categoryName);

    public void Dispose()
    {
    }

    private sealed class TestOutputLogger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category[(category.LastIndexOf('.') + 1)..]}[{eventId.Id}] {formatter(state, exception)}";
            if (exception is not null)
            {
                line += $" | {exception.GetType().Name}: {exception.Message}";
            }
            try
            {
                TestContext.Current.TestOutputHelper?.WriteLine(line);
            }
            catch (InvalidOperationException)
            {
                // Logged after the test finished (host shutdown): nowhere to write.
            }
        }
    }
}
