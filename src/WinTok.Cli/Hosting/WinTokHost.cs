using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Data.Corpus;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.ServiceDefaults;

namespace WinTok.Cli.Hosting;

/// <summary>How much a verb logs to stderr.</summary>
internal enum Verbosity
{
    /// <summary>Warnings and errors only: interactive verbs whose stdout is the result.</summary>
    Quiet,

    /// <summary>Information and above: the worker, and any verb run with <c>--verbose</c>.</summary>
    Normal,
}

/// <summary>
/// The one host every verb builds: appsettings.json (beside the binary, then the working directory), environment
/// variables, then the settings the verb itself fixes (its mode and its command-line options), so a command line wins
/// over the environment. Logs go to stderr, because stdout of some verbs is read by scripts (the job id of
/// <c>submit</c>).
/// </summary>
internal static class WinTokHost
{
    /// <summary>Longest a stopping host waits for its services; above <c>JobQueue:DrainTimeout</c> (30 s) so a drained partition is still recorded.</summary>
    private const string SettingsSources =
        "settings come from appsettings.json, environment variables such as WINTOK_POSTGRES and WINTOK_RABBITMQ (deploy/services.env), and the command line";

    private static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(60);

    public static HostApplicationBuilder CreateBuilder(Verbosity verbosity, IReadOnlyDictionary<string, string?>? settings = null,
        string serviceName = "wintok")
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            // Null args: System.CommandLine owns the command line; the host must not read `--db` as a setting.
            Args = null,
            ContentRootPath = Directory.GetCurrentDirectory(),
        });
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = Path.Combine(AppContext.BaseDirectory, "appsettings.json"),
            Optional = true,
            ReloadOnChange = false,
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        // HostOptions:ShutdownTimeout, else the host's own shutdownTimeoutSeconds (the Helm chart sets both).
        var shutdownTimeout = builder.Configuration.GetValue<TimeSpan?>("HostOptions:ShutdownTimeout")
            ?? (builder.Configuration.GetValue<int?>("shutdownTimeoutSeconds") is { } seconds ? TimeSpan.FromSeconds(seconds) : DefaultShutdownTimeout);
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = shutdownTimeout);

        // Logs on stderr (JSON lines with Logging:Json=true); metrics on Telemetry:PrometheusPort, traces over OTLP when configured.
        builder.AddServiceDefaults(serviceName);
        var minimum = verbosity == Verbosity.Normal ? LogLevel.Information : LogLevel.Warning;
        builder.Logging.SetMinimumLevel(minimum);
        // The framework's own start/stop chatter says nothing a CLI user needs.
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", verbosity == Verbosity.Normal ? LogLevel.Information : LogLevel.None);
        return builder;
    }

    /// <summary>
    /// Starts <paramref name="host"/> (migrations, consumers), runs one job against its services, then stops the
    /// application and waits for the host to drain. The job's exit code is returned.
    /// </summary>
    public static async Task<int> RunJobAsync(IHost host, Func<IServiceProvider, CancellationToken, Task<int>> job, CancellationToken cancellationToken)
    {
        if (await SettingsProblemAsync(host, cancellationToken) is { } problem) return ExitCodes.Usage(problem);
        try
        {
            await host.StartAsync(cancellationToken);
            return await job(host.Services, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Console.Error.WriteLine("wintok: interrupted");
            return ExitCodes.Failed;
        }
        catch (Exception exception) when (IsUnreachable(exception))
        {
            // Still failing once the resilience pipeline's retries (logged above) are spent: a server is down or
            // misnamed, which the user fixes; the stack trace would only hide that.
            Console.Error.WriteLine($"wintok: {exception.GetType().Name}: {exception.Message}");
            return ExitCodes.Failed;
        }
        finally
        {
            host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// Validates every <c>ValidateOnStart</c> option before the host starts, so a bad setting is one line for the user
    /// rather than the host's logged stack trace. Null when all are valid.
    /// </summary>
    public static async Task<string?> SettingsProblemAsync(IHost host, CancellationToken cancellationToken)
    {
        try
        {
            if (host.Services.GetService<IAsyncStartupValidator>() is { } validator) await validator.ValidateAsync(cancellationToken);
            return null;
        }
        catch (OptionsValidationException exception)
        {
            return $"bad settings: {string.Join("; ", exception.Failures)} ({SettingsSources})";
        }
        catch (AggregateException exception) when (exception.InnerExceptions.All(e => e is OptionsValidationException))
        {
            return $"bad settings: {string.Join("; ", exception.InnerExceptions.SelectMany(e => ((OptionsValidationException)e).Failures))} ({SettingsSources})";
        }
    }

    /// <summary>
    /// When no results database is configured (no <c>--db</c>, no <c>ResultsDatabase:ConnectionString</c>, no
    /// <c>WINTOK_POSTGRES</c>): where the user's jobs are, instead of the options validator's list of missing settings.
    /// </summary>
    public static string? NoDatabaseProblem(IHostApplicationBuilder builder) =>
        builder.Configuration["ResultsDatabase:ConnectionString"] is null && builder.Configuration["WINTOK_POSTGRES"] is null
            ? "no results database is configured and no local run has been made yet: a local job's record is in its OUTPUT/_wintok/results.db (pass it with --db); " +
              "jobs of the workers are in PostgreSQL (set WINTOK_POSTGRES, e.g. source deploy/services.env)"
            : null;

    private static bool IsUnreachable(Exception exception) => ResultsDatabase.IsTransient(exception)
        || RabbitMqConnection.IsTransient(exception) || BlobFileStore.IsTransient(exception);
}
