using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Inference;
using WinTok.Worker.Partitions;
using WinTok.Worker.Telemetry;

namespace WinTok.Worker.Tokenize;

/// <summary>One partition's inputs and how to run them.</summary>
internal sealed record TokenizeRun(
    CorpusPartition Partition,
    IFileStore Input,
    ImagePreprocessor Preprocessor,
    ModelSource Model,
    bool SemanticTokens,
    int BatchSize,
    int DecodeThreads);

/// <summary>
/// Streams a partition through read → decode (CPU threads) → model batches (the model thread) → shard rows, with
/// bounded queues between the stages so the GPU works on one batch while the next is decoded. Bad inputs become failure
/// records in the shard writer; only infrastructure failures (storage, model) end the partition with an exception.
/// </summary>
internal sealed class PartitionTokenizer(ModelThread model, WorkerMetrics? metrics = null)
{
    /// <summary>
    /// Batches handed to the model thread before the oldest must finish: one running, one launched behind it, one waiting, so
    /// the model thread always has the next batch at hand when it launches (2 gave 0.891 of model-only speed on the H100, 3 gave 0.919).
    /// </summary>
    private const int BatchesInFlight = 3;

    /// <summary>Runs the partition into <paramref name="writer"/>; <paramref name="onImages"/> gets each finished batch's image count.</summary>
    public async Task RunAsync(TokenizeRun work, ShardWriter writer, Action<int>? onImages, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = stop.Token;
        var decoded = PartitionImages.CreateChannel(work.BatchSize * 2);
        var images = new PartitionImages(work.Partition, work.Input, work.Preprocessor, work.DecodeThreads, work.BatchSize * 2, writer.AddFailure);
        var decoding = images.RunAsync(decoded.Writer, token);
        var batching = BatchAsync(work, writer, decoded.Reader, onImages, token);
        try
        {
            await Task.WhenAll(decoding, batching).ConfigureAwait(false);
        }
        catch
        {
            await stop.CancelAsync().ConfigureAwait(false); // a failed stage stops the others before the error surfaces
            throw;
        }
    }

    private async Task BatchAsync(TokenizeRun work, ShardWriter writer, ChannelReader<DecodedImage> input, Action<int>? onImages,
        CancellationToken cancellationToken)
    {
        var size = work.Preprocessor.ValuesPerImage;
        var inFlight = new Queue<(Task<TimedBatch> Tokens, List<DecodedImage> Images, byte[] Levels)>();
        var pending = new List<DecodedImage>(work.BatchSize);
        var partitionSpan = Activity.Current?.Context ?? default;

        async Task Finish()
        {
            var (tokens, images, levels) = inFlight.Dequeue();
            var (batch, submitted, took) = await tokens.ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(levels);
            for (var i = 0; i < images.Count; i++) writer.Add(ToRow(images[i], batch, i));
            onImages?.Invoke(images.Count);
            metrics?.BatchFinished(took);
            RecordBatchSpan(partitionSpan, submitted, took, images.Count);
        }

        void Submit()
        {
            var levels = ArrayPool<byte>.Shared.Rent(pending.Count * size);
            for (var i = 0; i < pending.Count; i++)
            {
                pending[i].Levels.AsSpan(0, size).CopyTo(levels.AsSpan(i * size, size));
                ArrayPool<byte>.Shared.Return(pending[i].Levels);
            }
            var tokens = TimeAsync(model.TokenizeAsync(work.Model, levels, pending.Count, work.SemanticTokens, cancellationToken));
            inFlight.Enqueue((tokens, pending.ToList(), levels));
            pending.Clear();
        }

        try
        {
            await foreach (var image in input.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                pending.Add(image);
                if (pending.Count < work.BatchSize) continue;
                if (inFlight.Count == BatchesInFlight) await Finish().ConfigureAwait(false);
                Submit();
            }
            if (pending.Count > 0) Submit();
            while (inFlight.Count > 0) await Finish().ConfigureAwait(false);
        }
        finally
        {
            foreach (var image in pending) ArrayPool<byte>.Shared.Return(image.Levels);
        }
    }

    private sealed record TimedBatch(TokenBatch Batch, DateTimeOffset Submitted, TimeSpan Took);

    /// <summary>The batch with how long the model thread took from hand-over to tokens (timed at completion, not when awaited).</summary>
    private static async Task<TimedBatch> TimeAsync(Task<TokenBatch> tokens)
    {
        var (submitted, started) = (DateTimeOffset.UtcNow, Stopwatch.GetTimestamp());
        var batch = await tokens.ConfigureAwait(false);
        return new TimedBatch(batch, submitted, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// A finished batch as a span under the partition's, drawn afterwards with its real start and duration: batches
    /// overlap (several are in flight), so a span open across them would make each the parent of the next.
    /// </summary>
    private static void RecordBatchSpan(ActivityContext partition, DateTimeOffset submitted, TimeSpan took, int images)
    {
        using var span = WorkerMetrics.Source.StartActivity("wintok.batch", ActivityKind.Internal, partition, startTime: submitted);
        if (span is null) return;
        span.SetTag("wintok.batch.images", images);
        span.SetEndTime(submitted.UtcDateTime + took);
    }

    private static TokenRow ToRow(DecodedImage image, TokenBatch batch, int index)
    {
        var sample = image.Sample;
        var semantic = batch.SemanticTokens is null ? null : MemoryMarshal.Cast<ushort, short>(batch.SemanticTokensOf(index)).ToArray();
        return new TokenRow(sample.Key, sample.Source, image.Sha256, image.Width, image.Height, sample.Label, sample.Caption,
            batch.PixelTokensOf(index).ToArray(), semantic);
    }
}
