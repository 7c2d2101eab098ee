namespace WinTok.Data.Images;

/// <summary>What libjpeg's marker reader makes of a JPEG's markers from its first scan to the end of the image.</summary>
internal enum JpegStreamVerdict
{
    /// <summary>The markers read as libjpeg reads them reach EOI without an error.</summary>
    Intact,

    /// <summary>libjpeg stops with an error (an <c>error_exit</c>): Pillow's "broken data stream".</summary>
    Broken,

    /// <summary>The data ends before libjpeg has read to EOI: Pillow's "image file is truncated".</summary>
    Truncated,

    /// <summary>Not judged: the header did not read as expected (Skia's own header reading decides then).</summary>
    NotJudged,
}

/// <summary>The outcome of <see cref="JpegStreamCheck.Check"/>.</summary>
/// <param name="Verdict">How libjpeg's marker reading ends.</param>
/// <param name="SingleScan">
/// Whether the image is one scan (sequential, all components interleaved). Only then does the verdict add to what
/// Skia reports: Skia reads rows and never calls <c>jpeg_finish_decompress</c>, which reads the markers after the
/// last row, so errors there go unseen; for several scans <c>jpeg_start_decompress</c> reads everything first and Skia
/// sees every error itself.
/// </param>
/// <param name="Detail">What was found and where, for rejection messages; empty when intact.</param>
internal readonly record struct JpegStreamResult(JpegStreamVerdict Verdict, bool SingleScan, string Detail);

/// <summary>
/// Replays libjpeg's marker reading (libjpeg-turbo <c>jdmarker.c</c>: <c>read_markers</c>, <c>next_marker</c>, the
/// segment readers, <c>jpeg_resync_to_restart</c>) over the bytes of a JPEG, without decoding any pixel, to learn
/// whether Pillow's decode would end in an error. Pillow (<c>JpegDecode.c</c>) turns every libjpeg error into
/// "broken data stream when reading image file" and ignores libjpeg's warnings (bad Huffman codes, premature end of a
/// data segment, extraneous bytes), and running out of data into "image file is truncated". Bit errors in the
/// entropy-coded data are warnings (libjpeg decodes garbage and goes on) unless they form a marker; what libjpeg then
/// does with that marker is what this class works out.
/// </summary>
/// <remarks>
/// <para>How the entropy-coded data ends: the Huffman decoder reads until it has decoded every MCU or meets a marker
/// (<c>FF xx</c>, <c>xx</c> not 0, any <c>FF</c> run before it being fill), and a marker is never read past; if the
/// MCUs run out first, <c>next_marker</c> skips the remaining bytes to the same marker. Either way the first marker after
/// the scan's data is the next one the marker reader handles. With a restart interval the decoder handles markers at
/// each interval boundary: restart markers are consumed, invalid markers (below <c>FFC0</c>) are skipped by the
/// resynchronisation, and any other marker is left for the marker reader. Whether an invalid marker lies before the
/// last boundary is told by counting restart markers against the scan's MCU count, which is exact while the restart
/// markers themselves are intact.</para>
/// <para>This reads markers only: it never decodes entropy-coded data, so it cannot and need not say what libjpeg's
/// Huffman decoder makes of corrupt codes (warnings, never errors).</para>
/// </remarks>
internal static class JpegStreamCheck
{
    private const int Soi = 0xD8, Eoi = 0xD9, Sos = 0xDA, Dqt = 0xDB, Dnl = 0xDC, Dri = 0xDD, Dht = 0xC4, Dac = 0xCC, Com = 0xFE, Tem = 0x01;
    private const int MaxComponentsInScan = 4, HuffmanTables = 4, QuantTables = 4, ArithmeticTables = 16;

    public static JpegStreamResult Check(ReadOnlySpan<byte> data)
    {
        if (data.Length < 4 || data[0] != 0xFF || data[1] != Soi)
        {
            return new(JpegStreamVerdict.NotJudged, false, "");
        }
        var reader = new MarkerReader(data, 2);
        return reader.Run();
    }

    private sealed class Frame(bool progressive, bool lossless, int width, int height, int[] ids, int[] h, int[] v)
    {
        public int[] Ids => ids;

        /// <summary>MCUs of a scan of the given components (libjpeg's <c>per_scan_setup</c>), or -1 when not computable.</summary>
        public long McusInScan(ReadOnlySpan<int> components)
        {
            int maxH = h.Max(), maxV = v.Max();
            var unit = lossless ? 1 : 8;
            if (maxH == 0 || maxV == 0)
            {
                return -1;
            }
            if (components.Length == 1)
            {
                var c = components[0];
                return CeilDiv((long)width * h[c], maxH * unit) * CeilDiv((long)height * v[c], maxV * unit);
            }
            return CeilDiv(width, maxH * unit) * CeilDiv(height, maxV * unit);
        }

        public bool IsSingleScan(int componentsInScan) => !progressive && componentsInScan == ids.Length;

        private static long CeilDiv(long a, long b) => (a + b - 1) / b;
    }

    /// <summary>A cursor over the bytes that reads as libjpeg's marker reader reads, and knows where it is.</summary>
    private ref struct MarkerReader(ReadOnlySpan<byte> data, int position)
    {
        private readonly ReadOnlySpan<byte> data = data;
        private int position = position;
        private Frame? frame;
        private int restartInterval;
        private int scans;
        private bool singleScan;
        private long scanMcus;

        public JpegStreamResult Run()
        {
            var unread = 0;
            var at = 0;
            while (true)
            {
                if (unread == 0 && !NextMarker(out unread, out at))
                {
                    return Truncated("before the EOI marker");
                }
                var marker = unread;
                unread = 0;
                var problem = Process(marker, at, out var end);
                if (problem is not null)
                {
                    return problem.Value;
                }
                if (end)
                {
                    return scans == 0 ? NotJudged() : new(JpegStreamVerdict.Intact, singleScan, "");
                }
                if (marker == Sos)
                {
                    if (!SkipScanData(out unread, out at))
                    {
                        return Truncated($"inside the entropy-coded data of scan {scans}");
                    }
                }
            }
        }

        /// <summary>Handles one marker as <c>read_markers</c> does; null when libjpeg goes on.</summary>
        private JpegStreamResult? Process(int marker, int at, out bool end)
        {
            end = false;
            switch (marker)
            {
                case Eoi:
                    end = true;
                    return null;
                case Soi:
                    return Broken($"a second SOI marker at byte {at}");
                case 0xC0 or 0xC1 or 0xC2 or 0xC3 or 0xC9 or 0xCA or 0xCB:
                    return frame is not null ? Broken($"a second SOF marker (0xFF{marker:X2}) at byte {at}") : ReadFrame(marker, at);
                case 0xC5 or 0xC6 or 0xC7 or 0xC8 or 0xCD or 0xCE or 0xCF:
                    return Broken($"an unsupported SOF marker 0xFF{marker:X2} at byte {at}");
                case Sos:
                    return ReadScanHeader(at);
                case Dht:
                    return ReadHuffmanTables(at);
                case Dqt:
                    return ReadQuantTables(at);
                case Dri:
                    return ReadRestartInterval(at);
                case Dac:
                    return ReadArithmeticConditioning(at);
                case >= 0xE0 and <= 0xEF or Com or Dnl:
                    return SkipSegment(marker, at);
                case >= 0xD0 and <= 0xD7 or Tem:
                    return null; // parameterless: libjpeg notes them and reads on
                default:
                    return Broken($"an unknown marker 0xFF{marker:X2} at byte {at}");
            }
        }

        private JpegStreamResult? ReadFrame(int marker, int at)
        {
            if (!Read2(out var length) || !Read1(out _) || !Read2(out var height) || !Read2(out var width) || !Read1(out var count))
            {
                return Truncated($"inside the SOF segment at byte {at}");
            }
            if (height <= 0 || width <= 0 || count <= 0 || length - 8 != count * 3)
            {
                return Broken($"a malformed SOF segment at byte {at}");
            }
            int[] ids = new int[count], h = new int[count], v = new int[count];
            for (var i = 0; i < count; i++)
            {
                if (!Read1(out ids[i]) || !Read1(out var sampling) || !Read1(out _))
                {
                    return Truncated($"inside the SOF segment at byte {at}");
                }
                (h[i], v[i]) = (sampling >> 4, sampling & 15);
            }
            frame = new Frame(marker is 0xC2 or 0xCA, marker is 0xC3 or 0xCB, width, height, ids, h, v);
            return null;
        }

        /// <summary>libjpeg's <c>get_sos</c>, then what <c>consume_markers</c> does with a scan it did not expect.</summary>
        private JpegStreamResult? ReadScanHeader(int at)
        {
            if (frame is null)
            {
                return Broken($"an SOS marker before any SOF at byte {at}");
            }
            if (!Read2(out var length) || !Read1(out var count))
            {
                return Truncated($"inside the SOS segment at byte {at}");
            }
            if (length != count * 2 + 6 || count < 1 || count > MaxComponentsInScan)
            {
                return Broken($"a malformed SOS segment at byte {at}");
            }
            Span<int> chosen = [-1, -1, -1, -1];
            for (var i = 0; i < count; i++)
            {
                if (!Read1(out var id) || !Read1(out _))
                {
                    return Truncated($"inside the SOS segment at byte {at}");
                }
                // libjpeg searches the first four components and, as it does, tests chosen[] by component index.
                var found = -1;
                for (var c = 0; c < frame.Ids.Length && c < MaxComponentsInScan && found < 0; c++)
                {
                    if (frame.Ids[c] == id && chosen[c] < 0)
                    {
                        found = c;
                    }
                }
                if (found < 0 || chosen[..i].Contains(found))
                {
                    return Broken($"an SOS segment at byte {at} naming component {id} wrongly");
                }
                chosen[i] = found;
            }
            if (!Read1(out _) || !Read1(out _) || !Read1(out _))
            {
                return Truncated($"inside the SOS segment at byte {at}");
            }
            if (scans == 0)
            {
                singleScan = frame.IsSingleScan(count);
            }
            else if (singleScan)
            {
                return Broken($"a second SOS marker at byte {at} in an image of one scan");
            }
            scans++;
            scanMcus = frame.McusInScan(chosen[..count]);
            return null;
        }

        /// <summary>
        /// Moves past a scan's entropy-coded data to the marker libjpeg's marker reader gets next (see the class
        /// remarks); false when the data ends first.
        /// </summary>
        private bool SkipScanData(out int unread, out int at)
        {
            var expectedRestarts = restartInterval > 0 && scanMcus > 0 ? (scanMcus + restartInterval - 1) / restartInterval - 1 : 0;
            var restartsSeen = 0L;
            while (NextMarker(out unread, out at))
            {
                if (restartInterval == 0)
                {
                    return true;
                }
                if (unread is >= 0xD0 and <= 0xD7)
                {
                    restartsSeen++;
                    continue;
                }
                if (unread < 0xC0 && restartsSeen < expectedRestarts)
                {
                    continue; // jpeg_resync_to_restart skips an invalid marker at the next interval boundary
                }
                return true;
            }
            return false;
        }

        /// <summary>libjpeg's <c>get_dht</c>: counts and table index checked, lengths must add up.</summary>
        private JpegStreamResult? ReadHuffmanTables(int at)
        {
            if (!Read2(out var length))
            {
                return Truncated($"inside the DHT segment at byte {at}");
            }
            length -= 2;
            while (length > 16)
            {
                if (!Read1(out var index))
                {
                    return Truncated($"inside the DHT segment at byte {at}");
                }
                var count = 0;
                for (var i = 0; i < 16; i++)
                {
                    if (!Read1(out var bits))
                    {
                        return Truncated($"inside the DHT segment at byte {at}");
                    }
                    count += bits;
                }
                length -= 17;
                if (count > 256 || count > length)
                {
                    return Broken($"a malformed DHT segment at byte {at}");
                }
                if (!Skip(count))
                {
                    return Truncated($"inside the DHT segment at byte {at}");
                }
                length -= count;
                if ((index & 0x0F) >= HuffmanTables || (index & ~0x1F) != 0)
                {
                    return Broken($"a DHT segment at byte {at} defining table {index}");
                }
            }
            return length != 0 ? Broken($"a DHT segment at byte {at} whose length does not add up") : null;
        }

        /// <summary>libjpeg's <c>get_dqt</c>.</summary>
        private JpegStreamResult? ReadQuantTables(int at)
        {
            if (!Read2(out var length))
            {
                return Truncated($"inside the DQT segment at byte {at}");
            }
            length -= 2;
            while (length > 0)
            {
                if (!Read1(out var n))
                {
                    return Truncated($"inside the DQT segment at byte {at}");
                }
                var wide = n >> 4 != 0;
                if ((n & 0x0F) >= QuantTables)
                {
                    return Broken($"a DQT segment at byte {at} defining table {n & 0x0F}");
                }
                if (!Skip(wide ? 128 : 64))
                {
                    return Truncated($"inside the DQT segment at byte {at}");
                }
                length -= wide ? 129 : 65;
            }
            return length != 0 ? Broken($"a DQT segment at byte {at} whose length does not add up") : null;
        }

        /// <summary>libjpeg's <c>get_dri</c>.</summary>
        private JpegStreamResult? ReadRestartInterval(int at)
        {
            if (!Read2(out var length))
            {
                return Truncated($"inside the DRI segment at byte {at}");
            }
            if (length != 4)
            {
                return Broken($"a DRI segment at byte {at} of length {length}");
            }
            if (!Read2(out restartInterval))
            {
                return Truncated($"inside the DRI segment at byte {at}");
            }
            return null;
        }

        /// <summary>libjpeg's <c>get_dac</c>.</summary>
        private JpegStreamResult? ReadArithmeticConditioning(int at)
        {
            if (!Read2(out var length))
            {
                return Truncated($"inside the DAC segment at byte {at}");
            }
            length -= 2;
            while (length > 0)
            {
                if (!Read1(out var index) || !Read1(out var value))
                {
                    return Truncated($"inside the DAC segment at byte {at}");
                }
                length -= 2;
                if (index >= 2 * ArithmeticTables || (index < ArithmeticTables && (value & 0x0F) > value >> 4))
                {
                    return Broken($"a malformed DAC segment at byte {at}");
                }
            }
            return length != 0 ? Broken($"a DAC segment at byte {at} whose length does not add up") : null;
        }

        /// <summary>
        /// APPn, COM and DNL are skipped by their length (libjpeg's <c>skip_variable</c>; APP0 and APP14 are examined
        /// first, which cannot fail). A length that reaches past the data suspends Pillow's reader, which then finds no
        /// more data.
        /// </summary>
        private JpegStreamResult? SkipSegment(int marker, int at)
        {
            if (!Read2(out var length) || (length > 2 && !Skip(length - 2)))
            {
                return Truncated($"inside the 0xFF{marker:X2} segment at byte {at}");
            }
            return null;
        }

        /// <summary>
        /// libjpeg's <c>next_marker</c>: skips bytes up to an <c>FF</c>, swallows fill <c>FF</c>s, treats <c>FF 00</c> as
        /// data and anything else as the marker. The same rule ends the Huffman decoder's reading.
        /// </summary>
        private bool NextMarker(out int marker, out int at)
        {
            while (true)
            {
                var next = data[position..].IndexOf((byte)0xFF);
                if (next < 0)
                {
                    position = data.Length;
                    (marker, at) = (0, 0);
                    return false;
                }
                at = position + next;
                position = at + 1;
                while (position < data.Length && data[position] == 0xFF)
                {
                    position++;
                }
                if (position >= data.Length)
                {
                    marker = 0;
                    return false;
                }
                marker = data[position++];
                if (marker != 0)
                {
                    return true;
                }
            }
        }

        private bool Read1(out int value)
        {
            if (position >= data.Length)
            {
                value = 0;
                return false;
            }
            value = data[position++];
            return true;
        }

        private bool Read2(out int value)
        {
            if (position + 2 > data.Length)
            {
                value = 0;
                return false;
            }
            value = data[position] << 8 | data[position + 1];
            position += 2;
            return true;
        }

        private bool Skip(int count)
        {
            if (position + count > data.Length)
            {
                position = data.Length;
                return false;
            }
            position += count;
            return true;
        }

        // Problems before the first scan's data are the header's: Skia has read the header already and its verdict
        // stands there, so only what follows the first scan is judged.
        private readonly JpegStreamResult Broken(string detail) =>
            scans == 0 ? NotJudged() : new(JpegStreamVerdict.Broken, singleScan, detail);

        private readonly JpegStreamResult Truncated(string detail) =>
            scans == 0 ? NotJudged() : new(JpegStreamVerdict.Truncated, singleScan, $"data ends {detail}");

        private static JpegStreamResult NotJudged() => new(JpegStreamVerdict.NotJudged, false, "");
    }
}
