using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace WinTok.Data.Images;

/// <summary>
/// Pillow's resize, reimplemented from the facts of Pillow 12's <c>src/libImaging/Resample.c</c> (antialiased
/// convolution) and <c>Geometry.c</c> (nearest neighbour), so that our pixels equal the reference's bit for bit.
/// </summary>
/// <remarks>
/// What has to match for bit-exactness:
/// <list type="bullet">
/// <item>the bicubic kernel with a = -0.5 and support 2, widened by the downscale factor (antialiasing);</item>
/// <item>each output's taps: centre <c>(x + 0.5) * scale</c>, first tap <c>(int)(centre - support + 0.5)</c> clamped
/// at 0, one past the last <c>(int)(centre + support + 0.5)</c> clamped at the input size, weights normalised to sum 1
/// in double precision;</item>
/// <item>weights turned into 22-bit fixed point (<c>PRECISION_BITS = 32 - 8 - 2</c>) rounding half away from zero;
/// sums start at half a unit, are shifted right by 22 and clamped to 0..255;</item>
/// <item>two separable passes, horizontal first, with an 8-bit intermediate image; a pass is skipped when that
/// dimension does not change (the kernel is then the identity anyway).</item>
/// </list>
/// Every output pixel depends only on its own taps, so we compute only the centre-crop window of the resized image
/// (Pillow computes the whole image and torchvision crops it afterwards): same values, far less work.
/// Pixels are either 1 byte (grayscale) or 4 bytes (RGBA or RGBX, all four lanes computed together).
/// </remarks>
internal static class PillowResampler
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const int Half = 1 << (PrecisionBits - 1);
    private const double BicubicSupport = 2.0;

    /// <summary>Pillow's bicubic kernel (Keys, a = -0.5).</summary>
    internal static double Bicubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0)
        {
            x = -x;
        }
        if (x < 1.0)
        {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0)
        {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    /// <summary>
    /// Fixed-point taps for outputs <c>first .. first + count - 1</c> of an <paramref name="inSize"/> to
    /// <paramref name="outSize"/> resize.
    /// </summary>
    internal sealed class Taps : IDisposable
    {
        public Taps(int inSize, int outSize, int first, int count)
        {
            var scale = (double)inSize / outSize;
            var filterScale = Math.Max(scale, 1.0);
            var support = BicubicSupport * filterScale;
            KernelSize = (int)Math.Ceiling(support) * 2 + 1;
            Count = count;
            Starts = ArrayPool<int>.Shared.Rent(count);
            Lengths = ArrayPool<int>.Shared.Rent(count);
            Weights = ArrayPool<int>.Shared.Rent(count * KernelSize);
            var raw = ArrayPool<double>.Shared.Rent(KernelSize);
            try
            {
                for (var i = 0; i < count; i++)
                {
                    var xx = first + i;
                    var center = (xx + 0.5) * scale;
                    var inverse = 1.0 / filterScale;
                    var xmin = Math.Max((int)(center - support + 0.5), 0);
                    var xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
                    var total = 0.0;
                    for (var x = 0; x < xmax; x++)
                    {
                        var w = Bicubic((x + xmin - center + 0.5) * inverse);
                        raw[x] = w;
                        total += w;
                    }
                    var row = Weights.AsSpan(i * KernelSize, KernelSize);
                    row.Clear();
                    for (var x = 0; x < xmax; x++)
                    {
                        var w = total != 0.0 ? raw[x] / total : raw[x];
                        row[x] = w < 0
                            ? (int)(-0.5 + w * (1 << PrecisionBits))
                            : (int)(0.5 + w * (1 << PrecisionBits));
                    }
                    Starts[i] = xmin;
                    Lengths[i] = Math.Max(xmax, 0);
                }
            }
            finally
            {
                ArrayPool<double>.Shared.Return(raw);
            }
        }

        public int KernelSize { get; }
        public int Count { get; }
        public int[] Starts { get; }
        public int[] Lengths { get; }
        public int[] Weights { get; }

        /// <summary>First input index any output reads.</summary>
        public int FirstInput => Starts[0];

        /// <summary>One past the last input index any output reads.</summary>
        public int EndInput => Starts[Count - 1] + Lengths[Count - 1];

        public void Dispose()
        {
            ArrayPool<int>.Shared.Return(Starts);
            ArrayPool<int>.Shared.Return(Lengths);
            ArrayPool<int>.Shared.Return(Weights);
        }
    }

    /// <summary>
    /// Bicubic-resizes a <paramref name="width"/> x <paramref name="height"/> image to
    /// <paramref name="resizedWidth"/> x <paramref name="resizedHeight"/> and writes only the
    /// <paramref name="cropWidth"/> x <paramref name="cropHeight"/> window at (<paramref name="cropLeft"/>,
    /// <paramref name="cropTop"/>) into <paramref name="destination"/> (packed rows, same pixel size as the source).
    /// </summary>
    public static unsafe void ResizeBicubic(
        ReadOnlySpan<byte> source, int width, int height, int sourceStride, int pixelBytes,
        int resizedWidth, int resizedHeight, int cropLeft, int cropTop, int cropWidth, int cropHeight,
        Span<byte> destination)
    {
        if (pixelBytes is not (1 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(pixelBytes), pixelBytes, "Pixels are 1 or 4 bytes");
        }
        var destinationStride = cropWidth * pixelBytes;
        if (destination.Length < destinationStride * cropHeight)
        {
            throw new ArgumentException($"Destination holds {destination.Length} bytes, the crop needs {destinationStride * cropHeight}", nameof(destination));
        }

        using var vertical = new Taps(height, resizedHeight, cropTop, cropHeight);
        var needVertical = resizedHeight != height;
        var needHorizontal = resizedWidth != width;
        var rowsFirst = needVertical ? vertical.FirstInput : cropTop;
        var rowsEnd = needVertical ? vertical.EndInput : cropTop + cropHeight;
        var rowCount = rowsEnd - rowsFirst;

        // The horizontal pass produces the cropped columns of every source row the vertical pass reads.
        byte[]? rented = null;
        ReadOnlySpan<byte> intermediate;
        int intermediateStride;
        try
        {
            if (needHorizontal)
            {
                intermediateStride = destinationStride;
                rented = ArrayPool<byte>.Shared.Rent(intermediateStride * rowCount);
                using var horizontal = new Taps(width, resizedWidth, cropLeft, cropWidth);
                fixed (byte* input = source)
                fixed (byte* output = rented)
                {
                    var y = 0;
                    if (pixelBytes == 4)
                    {
                        // Two rows share each output column's taps: one 256-bit multiply-add serves both.
                        for (; y + 2 <= rowCount; y += 2)
                        {
                            var inRow = input + (long)(y + rowsFirst) * sourceStride;
                            var outRow = output + (long)y * intermediateStride;
                            HorizontalRowPair4(inRow, inRow + sourceStride, outRow, outRow + intermediateStride, horizontal);
                        }
                    }
                    for (; y < rowCount; y++)
                    {
                        var inRow = input + (long)(y + rowsFirst) * sourceStride;
                        var outRow = output + (long)y * intermediateStride;
                        if (pixelBytes == 4)
                        {
                            HorizontalRow4(inRow, outRow, horizontal);
                        }
                        else
                        {
                            HorizontalRow1(inRow, outRow, horizontal);
                        }
                    }
                }
                intermediate = rented.AsSpan(0, intermediateStride * rowCount);
            }
            else
            {
                // Width unchanged: Pillow skips the pass; the crop still starts at cropLeft within each row.
                intermediateStride = sourceStride;
                intermediate = source.Slice(rowsFirst * sourceStride + cropLeft * pixelBytes);
            }

            fixed (byte* input = intermediate)
            fixed (byte* output = destination)
            {
                for (var y = 0; y < cropHeight; y++)
                {
                    var outRow = output + (long)y * destinationStride;
                    if (!needVertical)
                    {
                        new ReadOnlySpan<byte>(input + (long)y * intermediateStride, destinationStride)
                            .CopyTo(new Span<byte>(outRow, destinationStride));
                        continue;
                    }
                    var start = vertical.Starts[y] - rowsFirst;
                    var length = vertical.Lengths[y];
                    fixed (int* weights = &vertical.Weights[y * vertical.KernelSize])
                    {
                        if (pixelBytes == 4)
                        {
                            VerticalRow4(input + (long)start * intermediateStride, intermediateStride, length, weights, outRow, cropWidth);
                        }
                        else
                        {
                            VerticalRow1(input + (long)start * intermediateStride, intermediateStride, length, weights, outRow, cropWidth);
                        }
                    }
                }
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static unsafe void HorizontalRow4(byte* inRow, byte* outRow, Taps taps)
    {
        fixed (int* allWeights = taps.Weights)
        {
            for (var i = 0; i < taps.Count; i++)
            {
                var pixel = inRow + taps.Starts[i] * 4;
                var weights = allWeights + i * taps.KernelSize;
                var sum = Vector128.Create(Half);
                for (var x = 0; x < taps.Lengths[i]; x++)
                {
                    sum += Widen(pixel + x * 4) * Vector128.Create(weights[x]);
                }
                *(uint*)(outRow + i * 4) = Clip(sum);
            }
        }
    }

    private static unsafe void HorizontalRowPair4(byte* rowA, byte* rowB, byte* outA, byte* outB, Taps taps)
    {
        fixed (int* allWeights = taps.Weights)
        {
            for (var i = 0; i < taps.Count; i++)
            {
                var offset = taps.Starts[i] * 4;
                var weights = allWeights + i * taps.KernelSize;
                var sum = Vector256.Create(Half);
                for (var x = 0; x < taps.Lengths[i]; x++)
                {
                    // Pixel x of row A in lanes 0-3, of row B in lanes 4-7.
                    var pair = ((ulong)Unsafe.ReadUnaligned<uint>(rowB + offset + x * 4) << 32) | Unsafe.ReadUnaligned<uint>(rowA + offset + x * 4);
                    var bytes = Vector128.CreateScalarUnsafe(pair).AsByte();
                    sum += Vector256.WidenLower(Vector128.WidenLower(bytes).ToVector256Unsafe()).AsInt32() * Vector256.Create(weights[x]);
                }
                var levels = Vector256.Clamp(Vector256.ShiftRightArithmetic(sum, PrecisionBits), Vector256<int>.Zero, Vector256.Create(255));
                var shorts = Vector256.Narrow(levels, levels);
                var packed = Vector256.Narrow(shorts, shorts).AsUInt64().GetElement(0);
                *(uint*)(outA + i * 4) = (uint)packed;
                *(uint*)(outB + i * 4) = (uint)(packed >> 32);
            }
        }
    }

    private static unsafe void HorizontalRow1(byte* inRow, byte* outRow, Taps taps)
    {
        fixed (int* allWeights = taps.Weights)
        {
            for (var i = 0; i < taps.Count; i++)
            {
                var pixel = inRow + taps.Starts[i];
                var weights = allWeights + i * taps.KernelSize;
                var sum = Half;
                for (var x = 0; x < taps.Lengths[i]; x++)
                {
                    sum += pixel[x] * weights[x];
                }
                outRow[i] = Clip(sum);
            }
        }
    }

    /// <summary>
    /// One output row of the vertical pass over 4-byte pixels. Every byte lane is independent here, so the row is
    /// accumulated tap by tap over contiguous memory, eight lanes at a time, instead of pixel by pixel.
    /// </summary>
    private static unsafe void VerticalRow4(byte* firstRow, int stride, int length, int* weights, byte* outRow, int width)
    {
        var lanes = width * 4;
        var x = 0;
        for (; x + 8 <= lanes; x += 8)
        {
            var sum = Vector256.Create(Half);
            for (var y = 0; y < length; y++)
            {
                var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(firstRow + (long)y * stride + x)).AsByte();
                var ints = Vector256.WidenLower(Vector128.WidenLower(bytes).ToVector256Unsafe()).AsInt32();
                sum += ints * Vector256.Create(weights[y]);
            }
            var levels = Vector256.Clamp(Vector256.ShiftRightArithmetic(sum, PrecisionBits), Vector256<int>.Zero, Vector256.Create(255));
            var shorts = Vector256.Narrow(levels, levels);
            Unsafe.WriteUnaligned(outRow + x, Vector256.Narrow(shorts, shorts).AsUInt64().GetElement(0));
        }
        for (; x < lanes; x++)
        {
            var sum = Half;
            for (var y = 0; y < length; y++)
            {
                sum += firstRow[(long)y * stride + x] * weights[y];
            }
            outRow[x] = Clip(sum);
        }
    }

    private static unsafe void VerticalRow1(byte* firstRow, int stride, int length, int* weights, byte* outRow, int width)
    {
        for (var x = 0; x < width; x++)
        {
            var pixel = firstRow + x;
            var sum = Half;
            for (var y = 0; y < length; y++)
            {
                sum += pixel[(long)y * stride] * weights[y];
            }
            outRow[x] = Clip(sum);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector128<int> Widen(byte* pixel)
    {
        var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<uint>(pixel)).AsByte();
        return Vector128.WidenLower(Vector128.WidenLower(bytes)).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Clip(Vector128<int> sum)
    {
        var levels = Vector128.Clamp(Vector128.ShiftRightArithmetic(sum, PrecisionBits), Vector128<int>.Zero, Vector128.Create(255));
        var shorts = Vector128.Narrow(levels, levels);
        return Vector128.Narrow(shorts, shorts).AsUInt32().ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clip(int sum) => (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);

    /// <summary>
    /// Pillow's nearest-neighbour resize (used for palette and 1-bit images), cropped like
    /// <see cref="ResizeBicubic"/>. Pillow steps through source positions by repeated double additions of
    /// <c>inSize / outSize</c> starting at half a step and truncates each; the running sum, not the product
    /// <c>(k + 0.5) * step</c>, decides ties, so we replay it.
    /// </summary>
    public static void ResizeNearest(
        ReadOnlySpan<byte> source, int width, int height, int sourceStride, int pixelBytes,
        int resizedWidth, int resizedHeight, int cropLeft, int cropTop, int cropWidth, int cropHeight,
        Span<byte> destination)
    {
        var columns = ArrayPool<int>.Shared.Rent(cropWidth);
        var rows = ArrayPool<int>.Shared.Rent(cropHeight);
        try
        {
            NearestPositions(width, resizedWidth, cropLeft, columns.AsSpan(0, cropWidth));
            NearestPositions(height, resizedHeight, cropTop, rows.AsSpan(0, cropHeight));
            var destinationStride = cropWidth * pixelBytes;
            for (var y = 0; y < cropHeight; y++)
            {
                var inRow = source.Slice(rows[y] * sourceStride);
                var outRow = destination.Slice(y * destinationStride, destinationStride);
                for (var x = 0; x < cropWidth; x++)
                {
                    inRow.Slice(columns[x] * pixelBytes, pixelBytes).CopyTo(outRow.Slice(x * pixelBytes, pixelBytes));
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(columns);
            ArrayPool<int>.Shared.Return(rows);
        }
    }

    internal static void NearestPositions(int inSize, int outSize, int first, Span<int> positions)
    {
        if (inSize == outSize)
        {
            // Pillow copies an image whose size does not change.
            for (var i = 0; i < positions.Length; i++)
            {
                positions[i] = first + i;
            }
            return;
        }
        var step = (double)inSize / outSize;
        var position = step * 0.5;
        for (var k = 0; k < first; k++)
        {
            position += step;
        }
        for (var i = 0; i < positions.Length; i++)
        {
            // Pillow's COORD: negative positions are outside (cannot happen here), others truncate.
            positions[i] = Math.Min((int)position, inSize - 1);
            position += step;
        }
    }
}
