using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace WinTok.ServiceDefaults;

public static class TelemetryExtensions
{
    /// <summary>Every WinTok meter and ActivitySource is named <c>WinTok.{Project}</c>: one wildcard subscribes to all of them.</summary>
    public const string SourcePattern = "WinTok.*";

    /// <summary>
    /// Logging and telemetry every WinTok process shares: console logs on stderr (JSON lines with <c>Logging:Json=true</c>),
    /// and OpenTelemetry when something consumes it: the WinTok meters on a Prometheus endpoint
    /// (<c>Telemetry:PrometheusPort</c>) or through <paramref name="metricsExporter"/> (the dashboard's <c>/metrics</c>),
    /// and traces, metrics and logs over OTLP when an endpoint is configured. With neither, no SDK is started at all.
    /// </summary>
    public static IHostApplicationBuilder AddServiceDefaults(this IHostApplicationBuilder builder, string serviceName,
        Action<MeterProviderBuilder>? metricsExporter = null)
    {
        builder.AddConsoleLogging();
        builder.AddTelemetry(serviceName, metricsExporter);
        return builder;
    }

    /// <summary>Console logs on stderr (stdout of some verbs is read by scripts): one line each, or JSON with <c>Logging:Json=true</c>.</summary>
    public static IHostApplicationBuilder AddConsoleLogging(this IHostApplicationBuilder builder)
    {
        builder.Logging.ClearProviders();
        if (builder.Configuration.GetValue<bool>("Logging:Json"))
        {
            builder.Logging.AddJsonConsole(options =>
            {
                options.UseUtcTimestamp = true;
                options.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
            });
        }
        else
        {
            builder.Logging.AddSimpleConsole(options =>
            {
                options.SingleLine = true;
                options.TimestampFormat = "HH:mm:ss ";
            });
        }
        builder.Services.Configure<ConsoleLoggerOptions>(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        return builder;
    }

    /// <summary>The OpenTelemetry half of <see cref="AddServiceDefaults"/>.</summary>
    public static IHostApplicationBuilder AddTelemetry(this IHostApplicationBuilder builder, string serviceName,
        Action<MeterProviderBuilder>? metricsExporter = null)
    {
        var options = new TelemetryOptions();
        builder.Configuration.GetSection(TelemetryOptions.SectionName).Bind(options);
        if (options.PrometheusPort is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(builder), options.PrometheusPort, "Telemetry:PrometheusPort must be 0 (off) to 65535");
        var otlpEndpoint = options.OtlpEndpoint ?? builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        var otlp = !string.IsNullOrWhiteSpace(otlpEndpoint);
        if (options.PrometheusPort == 0 && metricsExporter is null && !otlp) return builder;

        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceInstanceId: $"{Environment.MachineName}:{Environment.ProcessId}"))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(SourcePattern);
                if (options.PrometheusPort > 0)
                    metrics.AddPrometheusHttpListener(listener =>
                    {
                        listener.Host = options.PrometheusHost;
                        listener.Port = options.PrometheusPort;
                    });
                metricsExporter?.Invoke(metrics);
            });
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing.AddSource(SourcePattern));
            // One exporter for traces, metrics and logs; the OTEL_* variables pick the protocol when the endpoint came from them.
            if (options.OtlpEndpoint is { } endpoint)
                telemetry.UseOtlpExporter(Protocol(builder.Configuration["OTEL_EXPORTER_OTLP_PROTOCOL"]), new Uri(endpoint));
            else
                telemetry.UseOtlpExporter();
        }
        return builder;
    }

    private static OtlpExportProtocol Protocol(string? name) =>
        name is "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
}
