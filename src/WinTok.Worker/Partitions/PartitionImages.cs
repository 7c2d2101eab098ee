using System.Buffers;
using System.Security.Cryptography;
using System.Threading.Channels;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;

namespace WinTok.Worker.Partitions;

/// <summary>One image of a partition, decoded and preprocessed: its levels are rented from the shared pool (return them).</summary>
internal sealed record DecodedImage(CorpusSample Sample, byte[] Levels, byte[] Sha256, int Width, int Height);

/// <summary>
/// A partition's images, read from the corpus and decoded on CPU threads into preprocessed levels, with bounded queues
/// between the stages so decoding runs ahead of the model by a few batches. Inputs that cannot be read or decoded become
/// failure records (<paramref name="onFailure"/>); only infrastructure failures (storage) end the stream with an
/// exception. Tokenize and evaluate read their partitions through it.
/// </summary>
/// <param name="inReadOrder">
/// Hand the images on in the order they were read, whichever decode thread finishes first. Evaluation needs it: its
/// numbers depend on which images share a batch (the reference's PSNR and SSIM are means of batch means) and its
/// files on the order of their rows, and every attempt of a partition must write the same bytes. Tokenize sorts its
/// rows by key and takes images as they come.
/// </param>
internal sealed class PartitionImages(CorpusPartition partition, IFileStore input, ImagePreprocessor preprocessor, int decodeThreads,
    int capacity, Action<FailureRecord> onFailure, bool inReadOrder = false)
{
    /// <summary>
    /// Starts reading and decoding; the images arrive in <paramref name="output"/>, which is completed (with the error,
    /// if any) when the partition is exhausted. Await the returned task to learn how it ended.
    /// </summary>
    public Task RunAsync(ChannelWriter<DecodedImage> output, CancellationToken cancellationToken)
    {
        if (inReadOrder) return RunInReadOrderAsync(output, cancellationToken);
        var samples = Channel.CreateBounded<CorpusSample>(new BoundedChannelOptions(capacity) { SingleWriter = true });
        var reading = ReadAsync(samples.Writer, cancellationToken);
        var decoding = Task.WhenAll(Enumerable.Range(0, decodeThreads)
            .Select(_ => Task.Run(() => DecodeAsync(samples.Reader, output, cancellationToken), cancellationToken)));
        var completing = decoding.ContinueWith(t => output.TryComplete(t.Exception), TaskScheduler.Default);
        return Task.WhenAll(reading, decoding, completing);
    }

    /// <summary>
    /// Each sample read gets a slot, queued in read order; the decode threads fill the slots as they finish, and one loop
    /// hands the filled slots on in queue order (skipping the inputs that became failure records). The slot queue is
    /// bounded like the others, so decoding still runs at most <c>capacity</c> images ahead of the consumer.
    /// </summary>
    private Task RunInReadOrderAsync(ChannelWriter<DecodedImage> output, CancellationToken cancellationToken)
    {
        var samples = Channel.CreateBounded<(CorpusSample Sample, TaskCompletionSource<DecodedImage?> Slot)>(
            new BoundedChannelOptions(capacity) { SingleWriter = true });
        var slots = Channel.CreateBounded<Task<DecodedImage?>>(new BoundedChannelOptions(capacity) { SingleWriter = true, SingleReader = true });
        var reading = ReadInOrderAsync(samples.Writer, slots.Writer, cancellationToken);
        var decoding = Task.WhenAll(Enumerable.Range(0, decodeThreads)
            .Select(_ => Task.Run(() => DecodeIntoSlotsAsync(samples.Reader, cancellationToken), cancellationToken)));
        var handing = HandOnAsync(slots.Reader, output, cancellationToken);
        return Task.WhenAll(reading, decoding, handing);
    }

    private async Task ReadInOrderAsync(ChannelWriter<(CorpusSample, TaskCompletionSource<DecodedImage?>)> samples,
        ChannelWriter<Task<DecodedImage?>> slots, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var item in CorpusReader.ReadAsync(partition, input, cancellationToken).ConfigureAwait(false))
            {
                if (item is FailureRecord failure)
                {
                    onFailure(failure);
                    continue;
                }
                if (item is not CorpusSample sample) continue;
                var slot = new TaskCompletionSource<DecodedImage?>(TaskCreationOptions.RunContinuationsAsynchronously);
                // The sample goes to the decoders before its slot is queued, so the oldest queued slot is always being
                // decoded or about to be: a full slot queue waits on work that is under way, never on itself.
                await samples.WriteAsync((sample, slot), cancellationToken).ConfigureAwait(false);
                await slots.WriteAsync(slot.Task, cancellationToken).ConfigureAwait(false);
            }
            samples.TryComplete();
            slots.TryComplete();
        }
        catch (Exception e)
        {
            samples.TryComplete(e);
            slots.TryComplete(e);
            throw;
        }
    }

    private async Task DecodeIntoSlotsAsync(ChannelReader<(CorpusSample Sample, TaskCompletionSource<DecodedImage?> Slot)> samples,
        CancellationToken cancellationToken)
    {
        await foreach (var (sample, slot) in samples.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                slot.SetResult(Decode(sample));
            }
            catch (Exception e)
            {
                slot.TrySetException(e);
                throw;
            }
        }
    }

    private static async Task HandOnAsync(ChannelReader<Task<DecodedImage?>> slots, ChannelWriter<DecodedImage> output, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var slot in slots.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (await slot.WaitAsync(cancellationToken).ConfigureAwait(false) is { } image)
                    await output.WriteAsync(image, cancellationToken).ConfigureAwait(false);
            }
            output.TryComplete();
        }
        catch (Exception e)
        {
            output.TryComplete(e);
            throw;
        }
    }

    /// <summary>A channel sized for this stream's consumers (a few batches).</summary>
    public static Channel<DecodedImage> CreateChannel(int capacity) =>
        Channel.CreateBounded<DecodedImage>(new BoundedChannelOptions(capacity) { SingleReader = true });

    private async Task ReadAsync(ChannelWriter<CorpusSample> output, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var item in CorpusReader.ReadAsync(partition, input, cancellationToken).ConfigureAwait(false))
            {
                if (item is FailureRecord failure) onFailure(failure);
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

    private async Task DecodeAsync(ChannelReader<CorpusSample> input, ChannelWriter<DecodedImage> output, CancellationToken cancellationToken)
    {
        await foreach (var sample in input.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (Decode(sample) is { } decoded) await output.WriteAsync(decoded, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The sample's preprocessed levels, or null when it is not a usable image (then it is a failure record).</summary>
    private DecodedImage? Decode(CorpusSample sample)
    {
        var size = preprocessor.ValuesPerImage;
        var levels = ArrayPool<byte>.Shared.Rent(size);
        var result = preprocessor.Preprocess(sample.Bytes, levels.AsSpan(0, size));
        if (result.Rejection is { } rejection)
        {
            ArrayPool<byte>.Shared.Return(levels);
            onFailure(new FailureRecord(sample.Key, sample.Source, rejection.Message, rejection.Reason.ToString(),
                FailureRecord.Sha256Hex(sample.Bytes)));
            return null;
        }
        return new DecodedImage(sample, levels, SHA256.HashData(sample.Bytes), result.SourceWidth, result.SourceHeight);
    }
}
