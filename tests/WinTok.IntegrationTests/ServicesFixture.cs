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
/// before they start, so a failed test leaves its state behind for a look. On PostgreSQL they use databases of their
/// own on the same server (<see cref="Postgres"/>, <see cref="CreateDatabaseAsync"/>), never the one WINTOK_POSTGRES
/// names: that one holds the jobs a user sees in <c>wintok jobs list</c>.
/// </summary>
public sealed class ServicesFixture
{
    /// <summary>Suffix of <see cref="Postgres"/>'s database name: the configured name plus this.</summary>
    public const string TestDatabaseSuffix = "_tests";

    private static readonly string ConfiguredPostgres =
        Environment.GetEnvironmentVariable("WINTOK_POSTGRES") ?? "Host=127.0.0.1;Port=5433;Username=postgres;Database=wintok";

    public string RabbitMq { get; } = Environment.GetEnvironmentVariable("WINTOK_RABBITMQ") ?? "amqp://guest:guest@127.0.0.1:5673/";

    /// <summary>
    /// The database WINTOK_POSTGRES names (the user's jobs and results): no test reads or writes it. Its server is the
    /// one the tests' own databases live on.
    /// </summary>
    public static string UserDatabase { get; } = new NpgsqlConnectionStringBuilder(ConfiguredPostgres).Database ?? "postgres";

    /// <summary>
    /// The tests' default database: WINTOK_POSTGRES's server, its database name plus <see cref="TestDatabaseSuffix"/>,
    /// created by <see cref="RequirePostgresAsync"/> when missing. Tests drop its schema when they start.
    /// </summary>
    public string Postgres { get; } = new NpgsqlConnectionStringBuilder(ConfiguredPostgres) { Database = UserDatabase + TestDatabaseSuffix }.ConnectionString;

    public string Blob { get; } = Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")
        ?? "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    /// <summary>deploy/services.sh of this checkout, for the tests that stop and start a server.</summary>
    public static string ServicesScript { get; } = FindServicesScript();

    public async Task RequireRabbitMqAsync()
    {
        var uri = new Uri(RabbitMq);
        await RequireAsync("RabbitMQ", uri.Host, uri.Port);
    }

    /// <summary>Skips (or in CI fails) the test when PostgreSQL does not answer; creates <see cref="Postgres"/>'s database if missing.</summary>
    public async Task RequirePostgresAsync()
    {
        var builder = new NpgsqlConnectionStringBuilder(Postgres);
        await RequireAsync("PostgreSQL", builder.Host ?? "127.0.0.1", builder.Port);
        await CreateDatabaseAsync(Postgres, builder.Database!);
    }

    public async Task RequireAzuriteAsync()
    {
        var endpoint = new BlobServiceClient(Blob).Uri;
        await RequireAsync("Azurite", endpoint.Host, endpoint.Port);
    }

    /// <summary>Drops every table of the test database (the schema is recreated by the migrator under test).</summary>
    public Task ResetPostgresAsync() => ResetDatabaseAsync(Postgres);

    /// <summary>
    /// Creates the database <paramref name="name"/> on the server of <paramref name="server"/> if it is missing (through
    /// the server's <c>postgres</c> database, so nothing else need exist) and returns its connection string. Refuses
    /// <see cref="UserDatabase"/>: tests never write there.
    /// </summary>
    public static async Task<string> CreateDatabaseAsync(string server, string name)
    {
        RefuseUserDatabase(name);
        if (!name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            throw new ArgumentException($"test database names are lower-case letters, digits and _, not '{name}'", nameof(name));
        var token = TestContext.Current.CancellationToken;
        // Unpooled: a pooled connection may predate a server restart by another test.
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server) { Database = "postgres", Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(token);
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", connection);
            exists.Parameters.AddWithValue("name", name);
            if (await exists.ExecuteScalarAsync(token) is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
                try
                {
                    await create.ExecuteNonQueryAsync(token);
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
                {
                    // created by a concurrent run
                }
            }
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    /// <summary>Drops every table of the database <paramref name="connectionString"/> names (never <see cref="UserDatabase"/>).</summary>
    public static async Task ResetDatabaseAsync(string connectionString)
    {
        var unpooled = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false };
        RefuseUserDatabase(unpooled.Database);
        await using var connection = new NpgsqlConnection(unpooled.ConnectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand("DROP SCHEMA public CASCADE; CREATE SCHEMA public;", connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
    }

    private static void RefuseUserDatabase(string? name)
    {
        if (string.Equals(name, UserDatabase, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"database '{name}' is the one WINTOK_POSTGRES names (the user's jobs): tests use databases of their own");
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
    public static async Task RunServicesScriptAsync(string arguments, bool privateSet = false, CancellationToken? cancellationToken = null)
    {
        var token = cancellationToken ?? TestContext.Current.CancellationToken;
        var start = new ProcessStartInfo("bash", $"{ServicesScript} {arguments}") { RedirectStandardError = true, RedirectStandardOutput = true };
        if (privateSet)
        {
            start.Environment["WINTOK_SERVICES_DIR"] = PrivateServicesDirectory;
            start.Environment["WINTOK_SERVICES_ENV_FILE"] = Path.Combine(PrivateServicesDirectory, "services.env");
            // Fixed ports of their own, clear of the shared set's preferred ones.
            start.Environment["WINTOK_RABBITMQ_PORT"] = "5693";
            start.Environment["WINTOK_POSTGRES_PORT"] = "5453";
            start.Environment["WINTOK_AZURITE_PORT"] = PrivateAzurite.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start bash");
        var stderr = process.StandardError.ReadToEndAsync(token);
        await process.StandardOutput.ReadToEndAsync(token);
        await process.WaitForExitAsync(token);
        try
        {
            TestContext.Current.TestOutputHelper?.WriteLine(await stderr);
        }
        catch (InvalidOperationException)
        {
            // run after the test finished (a fixture's cleanup): nowhere to write
        }
        Assert.True(process.ExitCode == 0, $"services.sh {arguments} exited with {process.ExitCode}: {await stderr}");
    }

    internal static string PrivateServicesDirectory => Path.Combine(Path.GetTempPath(), "wintok-services-faults");

    /// <summary>Whether something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<bool> IsListeningAsync(int port)
    {
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await client.ConnectAsync("127.0.0.1", port, timeout.Token);
            return true;
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

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

/// <summary>
/// An Azurite of the private set of servers (deploy/services.sh under /tmp/wintok-services-faults, port
/// <see cref="Port"/>), for a test that stops it: the shared Azurite stays up for the other test projects. Disposing
/// stops it, whatever the test did, so no server outlives the test that started it.
/// </summary>
internal sealed class PrivateAzurite : IAsyncDisposable
{
    public const int Port = 10020;

    private PrivateAzurite(string connectionString) => ConnectionString = connectionString;

    public string ConnectionString { get; }

    /// <summary>Starts it (or finds it running) and reads its connection string from the private set's services.env.</summary>
    public static async Task<PrivateAzurite> StartAsync()
    {
        await ServicesFixture.RunServicesScriptAsync("start-one azurite", privateSet: true);
        var line = File.ReadAllLines(Path.Combine(ServicesFixture.PrivateServicesDirectory, "services.env"))
            .Single(l => l.StartsWith("export WINTOK_BLOB_CONNECTION=", StringComparison.Ordinal));
        return new PrivateAzurite(line["export WINTOK_BLOB_CONNECTION=".Length..].Trim('\''));
    }

    public Task StopAsync() => ServicesFixture.RunServicesScriptAsync("stop-one azurite", privateSet: true);

    public Task StartAgainAsync() => ServicesFixture.RunServicesScriptAsync("start-one azurite", privateSet: true);

    /// <summary>Stops it (a no-op when already stopped), even when the test was cancelled.</summary>
    public async ValueTask DisposeAsync()
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await ServicesFixture.RunServicesScriptAsync("stop-one azurite", privateSet: true, limit.Token);
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
