using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Dashboard;

/// <summary>The dashboard's settings (section <c>Dashboard</c>).</summary>
public sealed class DashboardOptions
{
    public const string SectionName = "Dashboard";

    /// <summary>
    /// The token that allows actions (cancel, retry), sent as <c>Authorization: Bearer</c> or typed once into the login
    /// form. Never logged. Set it through <c>Dashboard__ActionToken</c> (the chart reads it from a Secret).
    /// </summary>
    /// <value>None: the dashboard is read-only and every action answers 403.</value>
    public string? ActionToken { get; set; }

    /// <summary>The workers' <c>Worker:HeartbeatInterval</c>: a worker silent for three of these is shown as gone.</summary>
    /// <value>5 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan WorkerHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often pages of running jobs and workers refresh themselves in the browser; 0 turns it off.</summary>
    /// <value>3 s.</value>
    [Range(0, 3600)]
    public int RefreshSeconds { get; set; } = 3;

    /// <summary>How often the database-read gauges of /metrics (jobs, workers, evaluation values, regressions) are refreshed.</summary>
    /// <value>15 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan GaugeRefreshInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Whether actions are allowed at all.</summary>
    public bool ActionsEnabled => !string.IsNullOrEmpty(ActionToken);
}

[OptionsValidator]
internal sealed partial class DashboardOptionsValidator : IValidateOptions<DashboardOptions>;
