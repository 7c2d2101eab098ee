using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using WinTok.Cli.Hosting;
using WinTok.Dashboard;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok dashboard [--urls URL] [--db PATH]`: the web dashboard over the results database (the SQLite file of a local
/// job with --db, else PostgreSQL from WINTOK_POSTGRES, else the latest local run's) until Ctrl+C. It binds loopback unless told otherwise, and is
/// read-only unless Dashboard__ActionToken is set.
/// </summary>
internal static class DashboardCommand
{
    public const string DefaultUrls = "http://127.0.0.1:5080";

    public static Command Create()
    {
        var urls = new Option<string>("--urls")
        {
            Description = $"Where to listen, ';'-separated (default {DefaultUrls}: this machine only; http://0.0.0.0:5080 for every interface).",
            DefaultValueFactory = _ => DefaultUrls,
        };
        var database = JobsCommand.DatabaseOption();
        var command = new Command("dashboard", "Serve the dashboard: jobs, failures, evaluations, workers, a JSON API and /metrics.")
        {
            urls, database,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(urls)!, parse.GetValue(database), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string urls, string? database, CancellationToken cancellationToken)
    {
        if (database is not null && !File.Exists(database)) return ExitCodes.Usage($"results database {database} does not exist");
        database = LocalDatabases.Resolve(database);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = Directory.GetCurrentDirectory(),
            ApplicationName = typeof(DashboardExtensions).Assembly.GetName().Name,
        });
        // As every verb: appsettings.json beside the binary first, then the usual sources, then the command line.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = Path.Combine(AppContext.BaseDirectory, "appsettings.json"),
            Optional = true,
            ReloadOnChange = false,
        });
        builder.Configuration.AddInMemoryCollection(JobsCommand.DatabaseSettings(database));
        if (WinTokHost.NoDatabaseProblem(builder) is { } noDatabase) return ExitCodes.Usage(noDatabase);
        builder.WebHost.UseUrls(urls);
        builder.AddWinTokDashboard();
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        await using var app = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(app, cancellationToken) is { } problem) return ExitCodes.Usage(problem);
        app.MapWinTokDashboard();
        app.Lifetime.ApplicationStarted.Register(() => Console.WriteLine(
            $"Dashboard on {string.Join(", ", app.Urls)} ({(database is null ? "PostgreSQL from WINTOK_POSTGRES" : Path.GetFullPath(database))}); Ctrl+C stops it."));
        await Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.RunAsync(app, cancellationToken);
        return ExitCodes.Success;
    }
}
