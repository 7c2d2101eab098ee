using System.ComponentModel.DataAnnotations;

namespace WinTok.ServiceDefaults;

/// <summary>
/// Retry and timeout of one dependency's pipeline, bound from <c>Resilience:{dependency}</c> (<c>Database</c>, <c>Broker</c>,
/// <c>Partition</c>). The defaults ride out a server restart of about half a minute.
/// </summary>
public sealed class RetryPipelineOptions
{
    /// <summary>Retries after the first try.</summary>
    /// <value>8.</value>
    [Range(1, 100)] // Polly's retry strategy needs at least one attempt
    public int MaxRetryAttempts { get; set; } = 8;

    /// <summary>Delay before the first retry; doubles each retry, with jitter.</summary>
    /// <value>200 ms.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of one delay.</summary>
    /// <value>5 s.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Time allowed for the whole call, retries and delays included; then it fails with a timeout.</summary>
    /// <value>60 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromSeconds(60);
}
