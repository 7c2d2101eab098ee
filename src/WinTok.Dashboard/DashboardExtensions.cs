using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using WinTok.Dashboard.Pages;
using WinTok.Dashboard.Queries;
using WinTok.Dashboard.Security;
using WinTok.Dashboard.Telemetry;
using WinTok.Jobs;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.ServiceDefaults;

namespace WinTok.Dashboard;

public static class DashboardExtensions
{
    /// <summary>
    /// The dashboard over the results database (<c>ResultsDatabase</c>, PostgreSQL from <c>WINTOK_POSTGRES</c> by default):
    /// its pages and API, the action token (<c>Dashboard:ActionToken</c>), job control for cancel and retry (retries
    /// publish to RabbitMQ when <c>WINTOK_RABBITMQ</c> is set), /metrics with the database-read gauges, and the service
    /// defaults (logs, OTLP).
    /// </summary>
    public static WebApplicationBuilder AddWinTokDashboard(this WebApplicationBuilder builder)
    {
        builder.AddServiceDefaults("wintok-dashboard", metrics => metrics.AddPrometheusExporter());
        builder.AddResultsStore();
        var mode = Mode(builder.Configuration);
        if (mode.CanPublish) builder.AddJobQueue();
        builder.AddJobControl();

        builder.Services.AddOptions<DashboardOptions>().BindConfiguration(DashboardOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DashboardOptions>, DashboardOptionsValidator>());
        builder.Services.TryAddSingleton(mode);
        builder.Services.TryAddSingleton(services => new ActionToken(services.GetRequiredService<IOptions<DashboardOptions>>().Value.ActionToken));
        builder.Services.TryAddSingleton<ActionGate>();
        builder.Services.TryAddSingleton<DashboardQueries>();
        builder.Services.TryAddSingleton<DashboardReader>();
        builder.Services.TryAddSingleton<DashboardGauges>();
        builder.Services.AddHostedService(services => services.GetRequiredService<DashboardGauges>());
        builder.Services.AddRazorComponents();
        // The API escapes <, >, & and quotes too (the default encoder, not the relaxed one): its strings are as inert
        // as the pages' even if a client pastes them into HTML.
        builder.Services.ConfigureHttpJsonOptions(options => options.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.Default);
        builder.Services.AddAntiforgery(options =>
        {
            options.Cookie.Name = "wintok-antiforgery";
            options.Cookie.SameSite = Microsoft.AspNetCore.Http.SameSiteMode.Strict;
        });
        builder.Services.AddDataProtection();
        builder.Services.Configure<KeyManagementOptions>(options => options.XmlRepository = new MemoryKeyRepository());
        // Keys held in memory are "unencrypted at rest" by definition; the warning that says so is noise here.
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection.KeyManagement.XmlKeyManager", LogLevel.Error);
        return builder;
    }

    /// <summary>Maps the pages, the API, the actions and /metrics.</summary>
    public static WebApplication MapWinTokDashboard(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<DashboardOptions>>().Value;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("WinTok.Dashboard");
        Log.Started(logger, app.Services.GetRequiredService<ResultsDatabase>().Provider.ToString(),
            options.ActionsEnabled ? "need the action token" : "disabled (no Dashboard:ActionToken)");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var urls = string.Join(", ", app.Urls);
            if (options.ActionsEnabled && app.Urls.Any(u => u.StartsWith("http://", StringComparison.Ordinal) && !IsLoopback(u)))
                Log.TokenOverPlainHttp(logger, urls);
        });
        app.Use(async (context, next) =>
        {
            // Pages are built on the server from the database: no inline script, no third-party origin, no framing.
            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
            await next(context);
        });
        DashboardEndpoints.Map(app);
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    private static DashboardMode Mode(IConfiguration configuration)
    {
        var provider = configuration.GetValue<ResultsProvider?>("ResultsDatabase:Provider")
            ?? (configuration["ResultsDatabase:ConnectionString"] is null && configuration["WINTOK_POSTGRES"] is { Length: > 0 } ? ResultsProvider.Postgres : null);
        if (provider == ResultsProvider.Sqlite)
        {
            var connection = configuration["ResultsDatabase:ConnectionString"] ?? "";
            var path = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(connection).DataSource;
            return new DashboardMode(path, CanPublish: false);
        }
        var broker = configuration["JobQueue:ConnectionString"] ?? configuration["WINTOK_RABBITMQ"];
        return new DashboardMode(null, CanPublish: !string.IsNullOrEmpty(broker));
    }

    private static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.IsLoopback || uri.Host is "localhost");
}
