using System.ComponentModel.DataAnnotations;

namespace WinTok.ServiceDefaults;

/// <summary>Where a process's metrics and traces go (section <c>Telemetry</c>). Nothing is exported unless configured.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "Telemetry";

    /// <summary>Serve Prometheus metrics on <c>http://{PrometheusHost}:{PrometheusPort}/metrics</c>.</summary>
    /// <value>0: no endpoint (the CLI's verbs, and `wintok worker` unless set; the chart sets 9464 for workers).</value>
    [Range(0, 65535)]
    public int PrometheusPort { get; set; }

    /// <summary>The host name the Prometheus listener binds: <c>localhost</c>, or <c>*</c> for every interface (pods).</summary>
    /// <value><c>localhost</c>.</value>
    [Required]
    public string PrometheusHost { get; set; } = "localhost";

    /// <summary>
    /// An OTLP collector (e.g. <c>http://otel-collector:4317</c>) that receives traces, metrics and logs; the standard
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (and <c>OTEL_EXPORTER_OTLP_PROTOCOL</c>) work as well.
    /// </summary>
    /// <value>None: no OTLP export.</value>
    public string? OtlpEndpoint { get; set; }
}
