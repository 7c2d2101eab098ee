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
internal sealed class PartitionImages(CorpusPartition partition, IFileStore input, ImagePreprocessor preprocessor, int decodeThreads,
    int capacity, Action<FailureRecord> onFailure)
{
    /// <summary>
    /// Starts reading and decoding; the images arrive in <paramref name="output"/>, which is completed (with the error,
    /// if any) when the partition is exhausted. Await the returned task to learn how it ended.
    /// </summary>
    public Task RunAsync(ChannelWriter<DecodedImage> output, CancellationToken cancellationToken)
    {
        var samples = Channel.CreateBounded<CorpusSample>(new BoundedChannelOptions(capacity) { SingleWriter = true });
        var reading = ReadAsync(samples.Writer, cancellationToken);
        var decoding = Task.WhenAll(Enumerable.Range(0, decodeThreads)
            .Select(_ => Task.Run(() => DecodeAsync(samples.Reader, output, cancellationToken), cancellationToken)));
        var completing = decoding.ContinueWith(t => output.TryComplete(t.Exception), TaskScheduler.Default);
        return Task.WhenAll(reading, decoding, completing);
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
        var size = preprocessor.ValuesPerImage;
        await foreach (var sample in input.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            var levels = ArrayPool<byte>.Shared.Rent(size);
            var result = preprocessor.Preprocess(sample.Bytes, levels.AsSpan(0, size));
            if (result.Rejection is { } rejection)
            {
                ArrayPool<byte>.Shared.Return(levels);
                onFailure(new FailureRecord(sample.Key, sample.Source, rejection.Message, rejection.Reason.ToString(),
                    FailureRecord.Sha256Hex(sample.Bytes)));
                continue;
            }
            var decoded = new DecodedImage(sample, levels, SHA256.HashData(sample.Bytes), result.SourceWidth, result.SourceHeight);
            await output.WriteAsync(decoded, cancellationToken).ConfigureAwait(false);
        }
    }
}
