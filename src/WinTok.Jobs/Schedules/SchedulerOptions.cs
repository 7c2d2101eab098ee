using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Jobs.Schedules;

/// <summary>The scheduler and the regression webhooks (section <c>Scheduler</c>).</summary>
internal sealed class SchedulerOptions
{
    public const string SectionName = "Scheduler";

    /// <summary>
    /// Whether <c>wintok worker</c> runs the scheduler too. <value>null</value>: yes on the embedded defaults (one
    /// machine), no with servers configured, where the <c>wintok scheduler</c> deployment runs it.
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>This replica's name in the lease and in the slots it records. <value>host name and process id</value></summary>
    [Required]
    public string InstanceName { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>How often the lease holder looks for due slots. <value>15 s</value></summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long the scheduler lease lasts without renewal (renewed every third of it while working); a replica that
    /// dies is replaced after at most this long. <value>60 s</value>
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:03", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A slot found later than this after its time was missed (everything was down) and follows its schedule's missed
    /// policy; sooner, it simply fires. Keep it above the lease duration, or a fail-over would count as an outage.
    /// <value>5 min</value>
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan MissedAfter { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A checkpoint file modified more recently than this may still be being written; a later slot takes it. <value>2 min</value></summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan CheckpointSettleTime { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>A scheduled job still unpublished this long after its slot was recorded lost its publisher: the lease holder publishes it. <value>1 min</value></summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RepublishAfter { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Timeout of one webhook request (the <c>Resilience:Webhook</c> pipeline retries it). <value>10 s</value></summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan WebhookTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Regressions whose webhook failed are retried by the lease holder for this long. <value>1 day</value></summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00")]
    public TimeSpan WebhookRetryWindow { get; set; } = TimeSpan.FromDays(1);
}

[OptionsValidator]
internal sealed partial class SchedulerOptionsValidator : IValidateOptions<SchedulerOptions>;
