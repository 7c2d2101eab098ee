using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using WinTok.Data.Corpus;
using WinTok.Data.Images;

namespace WinTok.Data.Training;

/// <summary>One training batch ready for the model, with where the data stands after it.</summary>
/// <param name="Values">Count x 3 x size x size float32 in [-1, 1], CHW per image, images in stream order.</param>
/// <param name="Count">Images in the batch (always the batch size: rejected inputs are replaced by the next ones).</param>
/// <param name="Next">The data position after the batch's last item: a checkpoint after this batch resumes there.</param>
/// <param name="Failures">Inputs skipped while filling this batch, with their reasons.</param>
public sealed record TrainingBatch(float[] Values, int Count, TrainingDataPosition Next, IReadOnlyList<FailureRecord> Failures);

/// <summary>
/// Turns the training stream into batches on CPU threads ahead of the model: items are decoded and cropped by up to
/// <c>decodeThreads</c> threads at once, at most <c>readAhead</c> items ahead of the batch being filled, and consumed
/// in stream order, so a batch's content and its <see cref="TrainingBatch.Next"/> position depend on the seed and the
/// data alone. Each image's crop is drawn from its own seed (<see cref="TrainingSample.CropSeed"/>), whichever thread
/// decodes it.
/// </summary>
public sealed class TrainingBatches
{
    private readonly TrainingSampleReader reader;
    private readonly TrainingPreprocessor preprocessor;
    private readonly int batchSize;
    private readonly int decodeThreads;
    private readonly int readAhead;

    public TrainingBatches(TrainingSampleReader reader, TrainingPreprocessor preprocessor, int batchSize, int decodeThreads, int readAhead)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(decodeThreads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(readAhead, 1);
        (this.reader, this.preprocessor, this.batchSize, this.decodeThreads, this.readAhead) = (reader, preprocessor, batchSize, decodeThreads, readAhead);
    }

    /// <summary>Batches from <paramref name="start"/> on, until the caller stops reading.</summary>
    /// <exception cref="InvalidDataException">A whole data epoch passed without one decodable image.</exception>
    public async IAsyncEnumerable<TrainingBatch> ReadAsync(TrainingDataPosition start, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var decoded = Channel.CreateBounded<(TrainingSample Sample, Task<Decoded> Result)>(
            new BoundedChannelOptions(readAhead) { SingleReader = true, SingleWriter = true });
        var producing = ProduceAsync(start, decoded.Writer, stop.Token);
        var perImage = preprocessor.ValuesPerImage;
        var values = new float[batchSize * perImage];
        var count = 0;
        var failures = new List<FailureRecord>();
        var lastSuccessEpoch = start.Epoch;
        try
        {
            await foreach (var (sample, task) in decoded.Reader.ReadAllAsync(stop.Token))
            {
                var result = await task;
                if (result.Failure is { } failure)
                {
                    failures.Add(failure);
                    if (sample.Position.Epoch > lastSuccessEpoch + 1)
                        throw new InvalidDataException($"The training data has no decodable image: a whole data epoch was read without one (last failure: {failure.Reason})");
                    continue;
                }
                lastSuccessEpoch = sample.Position.Epoch;
                var target = values.AsSpan(count * perImage, perImage);
                var levels = result.Levels!;
                for (var i = 0; i < perImage; i++) target[i] = ImagePreprocessor.LevelToValue(levels[i]);
                ArrayPool<byte>.Shared.Return(levels);
                if (++count < batchSize) continue;
                yield return new TrainingBatch(values, count, sample.Next, failures);
                values = new float[batchSize * perImage];
                count = 0;
                failures = [];
            }
            await producing; // the stream is endless, so ending here means the producer failed; this rethrows it
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await producing;
            }
            catch (OperationCanceledException)
            {
                // stopped by us
            }
            while (decoded.Reader.TryRead(out var pending))
            {
                if (await pending.Result.ConfigureAwait(false) is { Levels: { } leftover }) ArrayPool<byte>.Shared.Return(leftover);
            }
        }
    }

    private async Task ProduceAsync(TrainingDataPosition start, ChannelWriter<(TrainingSample, Task<Decoded>)> writer, CancellationToken cancellationToken)
    {
        using var slots = new SemaphoreSlim(decodeThreads);
        try
        {
            await foreach (var sample in reader.ReadAsync(start, cancellationToken))
            {
                Task<Decoded> task;
                if (sample.Item is FailureRecord failure)
                {
                    task = Task.FromResult(new Decoded(null, failure));
                }
                else
                {
                    await slots.WaitAsync(cancellationToken);
                    var item = (CorpusSample)sample.Item;
                    task = Task.Run(() =>
                    {
                        try
                        {
                            return Decode(item, sample.CropSeed);
                        }
                        finally
                        {
                            slots.Release();
                        }
                    }, CancellationToken.None);
                }
                await writer.WriteAsync((sample, task), cancellationToken);
            }
            writer.Complete();
        }
        catch (Exception e)
        {
            writer.Complete(e);
            throw;
        }
        finally
        {
            // Let decodes in flight finish before the semaphore goes.
            for (var i = 0; i < decodeThreads; i++) await slots.WaitAsync(CancellationToken.None);
        }
    }

    private Decoded Decode(CorpusSample sample, ulong cropSeed)
    {
        var levels = ArrayPool<byte>.Shared.Rent(preprocessor.ValuesPerImage);
        var result = preprocessor.Preprocess(sample.Bytes, new SampleRandom(cropSeed), levels.AsSpan(0, preprocessor.ValuesPerImage), out _);
        if (result.Succeeded) return new Decoded(levels, null);
        ArrayPool<byte>.Shared.Return(levels);
        return new Decoded(null, new FailureRecord(sample.Key, sample.Source, $"{result.Rejection!.Reason}: {result.Rejection.Message}",
            BytesSha256: FailureRecord.Sha256Hex(sample.Bytes)));
    }

    private sealed record Decoded(byte[]? Levels, FailureRecord? Failure);
}
