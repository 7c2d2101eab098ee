using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Worker.Hosting;

/// <summary>How this worker takes and runs partitions, and its health file (section <c>Worker</c>).</summary>
internal sealed class WorkerOptions
{
    public const string SectionName = "Worker";

    /// <summary>This worker's name in the results database. <value>host name and process id</value></summary>
    [Required]
    public string WorkerName { get; set; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>How long a claimed partition stays ours without a renewal. <value>2 minutes</value>; renewed every third of it.</summary>
    [Range(typeof(TimeSpan), "00:00:03", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Decode threads per partition. <value>0</value> means one per core but one.</summary>
    [Range(0, 512)]
    public int DecodeThreads { get; set; }

    /// <summary>Created once the worker has started, touched every <see cref="HealthFileInterval"/>, deleted once it has stopped.</summary>
    /// <value><c>/tmp/wintok-healthy</c>; empty to write none.</value>
    public string HealthFile { get; set; } = "/tmp/wintok-healthy";

    /// <summary>How often the file's modification time is refreshed, so a liveness probe can tell a wedged process.</summary>
    /// <value>15 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan HealthFileInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How often the worker's row in <c>workers</c> is refreshed; the dashboard takes a worker silent for three
    /// intervals (its <c>Dashboard:WorkerHeartbeatInterval</c>, the same default) for gone.
    /// </summary>
    /// <value>5 s.</value>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>How this process runs its models (section <c>Model</c>); see <see cref="WinTok.Inference.ModelThreadSettings"/>.</summary>
internal sealed class ModelOptions
{
    public const string SectionName = "Model";

    /// <summary>cuda, cuda:N or cpu. <value>auto</value> picks CUDA when a GPU is visible.</summary>
    [Required]
    public string Device { get; set; } = "auto";

    /// <summary>Images per model call. <value>0</value> means 128 on a GPU and 8 on the CPU.</summary>
    [Range(0, 4096)]
    public int BatchSize { get; set; }

    /// <summary>Linear layers through cuBLASLt with fused epilogues at bf16 inference. <value>true</value></summary>
    public bool CublasLt { get; set; } = true;

    /// <summary>Our one-pass bf16 LayerNorm kernel. <value>true</value></summary>
    public bool FusedLayerNorm { get; set; } = true;

    /// <summary>Our fused nearest-code search kernel. <value>true</value></summary>
    public bool FusedCodeSearch { get; set; } = true;

    /// <summary>UniTok's convolution stages rewritten for bf16 inference (NHWC, GEMMs, fused depthwise, sub-pixel upsampling). <value>true</value></summary>
    public bool ConvolutionRewrites { get; set; } = true;
}

[OptionsValidator]
internal sealed partial class WorkerOptionsValidator : IValidateOptions<WorkerOptions>;

[OptionsValidator]
internal sealed partial class ModelOptionsValidator : IValidateOptions<ModelOptions>;
