using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Cli.Hosting;

/// <summary>
/// The readiness and liveness file of <c>wintok worker</c>, bound from <c>Worker</c>. The Helm chart names the same
/// settings <c>HealthFile:Path</c> and <c>HealthFile:Interval</c>; those are read when the <c>Worker</c> keys are absent.
/// </summary>
internal sealed class HealthFileOptions
{
    public const string SectionName = "Worker";

    /// <summary>Created once the worker has started, touched every <see cref="HealthFileInterval"/>, deleted once it has stopped.</summary>
    /// <value><c>/tmp/wintok-healthy</c>; empty to write none.</value>
    public string HealthFile { get; set; } = "/tmp/wintok-healthy";

    /// <summary>How often the file's modification time is refreshed, so a liveness probe can tell a wedged process.</summary>
    /// <value>15 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan HealthFileInterval { get; set; } = TimeSpan.FromSeconds(15);
}

[OptionsValidator]
internal sealed partial class HealthFileOptionsValidator : IValidateOptions<HealthFileOptions>;
