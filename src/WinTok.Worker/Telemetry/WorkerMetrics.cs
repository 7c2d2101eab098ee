using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace WinTok.Worker.Telemetry;

/// <summary>
/// The worker's instruments (meter <c>WinTok.Worker</c>) and its ActivitySource. Prometheus sees them as
/// <c>wintok_tokenize_images_total</c>, <c>wintok_batches_total</c>, <c>wintok_batch_duration_seconds</c>,
/// <c>wintok_partitions_total{kind,outcome}</c>, <c>wintok_item_failures_total{kind,reason}</c>,
/// <c>wintok_queue_lag_seconds</c> and <c>wintok_gpu_memory_used_bytes{gpu}</c> (helm/wintok/dashboards/ plots them).
/// </summary>
internal sealed class WorkerMetrics
{
    public const string Name = "WinTok.Worker";

    /// <summary>Spans of the worker: a partition (child of its job's submission) and its model batches.</summary>
    public static ActivitySource Source { get; } = new(Name);

    private readonly Counter<long> images;
    private readonly Counter<long> batches;
    private readonly Histogram<double> batchDuration;
    private readonly Counter<long> partitions;
    private readonly Counter<long> itemFailures;
    private readonly Histogram<double> queueLag;

    public WorkerMetrics(IMeterFactory meters, GpuMemoryProbe gpu)
    {
        var meter = meters.Create(Name);
        images = meter.CreateCounter<long>("wintok.tokenize.images", "{image}", "Images tokenized and written to shards");
        batches = meter.CreateCounter<long>("wintok.batches", "{batch}", "Model batches finished");
        batchDuration = meter.CreateHistogram("wintok.batch.duration", "s", "From handing a batch to the model thread to its tokens",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        partitions = meter.CreateCounter<long>("wintok.partitions", "{partition}", "Partition attempts by outcome: committed, failed, retried");
        itemFailures = meter.CreateCounter<long>("wintok.item_failures", "{item}", "Input items that could not be used, by reason");
        queueLag = meter.CreateHistogram("wintok.queue.lag", "s", "From a partition message's publication to the start of its handling",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600, 14400] });
        meter.CreateObservableGauge("wintok.gpu.memory.used", () => gpu.Latest.Select(g =>
            new Measurement<long>(g.UsedMib * 1024 * 1024, new KeyValuePair<string, object?>("gpu", g.Index))), "By", "GPU memory in use (nvidia-smi)");
    }

    public void AddImages(int count) => images.Add(count);

    public void BatchFinished(TimeSpan duration)
    {
        batches.Add(1);
        batchDuration.Record(duration.TotalSeconds);
    }

    public void PartitionCommitted(string kind) => partitions.Add(1, Kind(kind), new("outcome", "committed"));

    public void PartitionFailed(string kind) => partitions.Add(1, Kind(kind), new("outcome", "failed"));

    public void PartitionRetried(string kind) => partitions.Add(1, Kind(kind), new("outcome", "retried"));

    public void ItemFailed(string kind, string reason) => itemFailures.Add(1, Kind(kind), new("reason", reason));

    public void QueueLag(TimeSpan lag) => queueLag.Record(Math.Max(0, lag.TotalSeconds));

    private static KeyValuePair<string, object?> Kind(string kind) => new("kind", kind);
}
