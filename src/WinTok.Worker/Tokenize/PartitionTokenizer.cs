using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Threading.Channels;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Inference;
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

    private sealed record Decoded(CorpusSample Sample, byte[] Levels, byte[] Sha256, int Width, int Height);

    /// <summary>Runs the partition into <paramref name="writer"/>; <paramref name="onImages"/> gets each finished batch's image count.</summary>
    public async Task RunAsync(TokenizeRun work, ShardWriter writer, Action<int>? onImages, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = stop.Token;
        var samples = Channel.CreateBounded<CorpusSample>(new BoundedChannelOptions(work.BatchSize * 2) { SingleWriter = true });
        var decoded = Channel.CreateBounded<Decoded>(new BoundedChannelOptions(work.BatchSize * 2) { SingleReader = true });

        var reading = ReadAsync(work, writer, samples.Writer, token);
        var decoding = Task.WhenAll(Enumerable.Range(0, work.DecodeThreads)
            .Select(_ => Task.Run(() => DecodeAsync(work, writer, samples.Reader, decoded.Writer, token), token)));
        var completing = decoding.ContinueWith(t => decoded.Writer.TryComplete(t.Exception), TaskScheduler.Default);
        var batching = BatchAsync(work, writer, decoded.Reader, onImages, token);
        try
        {
            await Task.WhenAll(reading, decoding, batching).ConfigureAwait(false);
        }
        catch
        {
            await stop.CancelAsync().ConfigureAwait(false); // a failed stage stops the others before the error surfaces
            throw;
        }
        finally
        {
            await completing.ConfigureAwait(false);
        }
    }

    private static async Task ReadAsync(TokenizeRun work, ShardWriter writer, ChannelWriter<CorpusSample> output, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var item in CorpusReader.ReadAsync(work.Partition, work.Input, cancellationToken).ConfigureAwait(false))
            {
                if (item is FailureRecord failure) writer.AddFailure(failure);
                else if (item is CorpusSample sample) await output.WriteAsync(sample, cancellationToken).ConfigureAwait(false);
            }
            output.TryComplete();
        }
        catch (Exception e)
        {
            output.TryComplete(e);
            throw;
        }
    }

    private static async Task DecodeAsync(TokenizeRun work, ShardWriter writer, ChannelReader<CorpusSample> input,
        ChannelWriter<Decoded> output, CancellationToken cancellationToken)
    {
        var size = work.Preprocessor.ValuesPerImage;
        await foreach (var sample in input.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            var levels = ArrayPool<byte>.Shared.Rent(size);
            var result = work.Preprocessor.Preprocess(sample.Bytes, levels.AsSpan(0, size));
            if (result.Rejection is { } rejection)
            {
                ArrayPool<byte>.Shared.Return(levels);
                writer.AddFailure(new FailureRecord(sample.Key, sample.Source, rejection.Message, rejection.Reason.ToString(),
                    FailureRecord.Sha256Hex(sample.Bytes)));
                continue;
            }
            var decoded = new Decoded(sample, levels, SHA256.HashData(sample.Bytes), result.SourceWidth, result.SourceHeight);
            await output.WriteAsync(decoded, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task BatchAsync(TokenizeRun work, ShardWriter writer, ChannelReader<Decoded> input, Action<int>? onImages,
        CancellationToken cancellationToken)
    {
        var size = work.Preprocessor.ValuesPerImage;
        var inFlight = new Queue<(Task<TimedBatch> Tokens, List<Decoded> Images, byte[] Levels)>();
        var pending = new List<Decoded>(work.BatchSize);
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

    private static TokenRow ToRow(Decoded image, TokenBatch batch, int index)
    {
        var sample = image.Sample;
        var semantic = batch.SemanticTokens is null ? null : MemoryMarshal.Cast<ushort, short>(batch.SemanticTokensOf(index)).ToArray();
        return new TokenRow(sample.Key, sample.Source, image.Sha256, image.Width, image.Height, sample.Label, sample.Caption,
            batch.PixelTokensOf(index).ToArray(), semantic);
    }
}
