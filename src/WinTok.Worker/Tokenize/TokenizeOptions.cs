using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Worker.Tokenize;

/// <summary>How this worker runs the model and feeds it (section <c>Tokenize</c>).</summary>
internal sealed class TokenizeOptions
{
    public const string SectionName = "Tokenize";

    /// <summary>cuda, cuda:N or cpu; <value>auto</value> picks CUDA when a GPU is visible.</summary>
    [Required]
    public string Device { get; set; } = "auto";

    /// <summary>Images per model call. <value>0</value> means 128 on a GPU and 8 on the CPU.</summary>
    [Range(0, 4096)]
    public int BatchSize { get; set; }

    /// <summary>Decode threads per partition. <value>0</value> means one per core but one.</summary>
    [Range(0, 512)]
    public int DecodeThreads { get; set; }

    /// <summary>How long a claimed partition stays ours without a renewal. <value>2 minutes</value>; renewed every third of it.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Where blob checkpoints are cached on local disk. <value>~/.cache/wintok/checkpoints</value></summary>
    public string CheckpointCache { get; set; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "wintok", "checkpoints");

    /// <summary>This worker's name in the results database. <value>host name and process id</value></summary>
    public string WorkerName { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";
}

[OptionsValidator]
internal sealed partial class TokenizeOptionsValidator : IValidateOptions<TokenizeOptions>;
