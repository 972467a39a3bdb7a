"""Word lists for the generated WebShop catalog: product types, option values, phrasings.

`synthetic.py` draws products and instructions from these tables. Each product type
takes four lines, so that the whole shop reads in a few screens:

    category | noun | search query | price range | option=pool, option=pool
    category path, levels joined by " › "
    variants, comma separated
    attributes, comma separated

("quantity" is short for the original's option name "item package quantity".)

`variants` are the words that set one product apart from others of its type ("clip-in",
"tape-in"); they go into titles and instructions, which is what lets search find a
product. Options name pools in `OPTION_POOLS`. The categories and the style of
attributes and options follow the original WebShop data (Amazon products scraped for
five categories).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProductType:
    """One kind of product: the words its titles, texts and instructions are made of."""

    category: str
    """Top-level category: beauty, electronics, grocery, fashion or home."""
    path: str
    """Category path as on Amazon, levels joined by " › "."""
    query: str
    """The search query the original scrape found such products with (type reward)."""
    noun: str
    """What the product is, as a shopper says it ("hair extension")."""
    variants: tuple[str, ...]
    """Sub-kinds that appear in titles and instructions ("clip-in", "tape-in")."""
    attributes: tuple[str, ...]
    """Attribute phrases products of this type may have ("natural looking")."""
    options: tuple[tuple[str, str], ...]
    """(option name, pool name in `OPTION_POOLS`) pairs."""
    price: tuple[float, float]
    """Range prices are drawn from, in dollars."""


_TYPES = """
beauty | hair extension | hair extensions | 12-90 | color=hair, size=hair_length
beauty & personal care › hair care › hair extensions, wigs & accessories › hair extensions
clip-in, tape-in, halo, ponytail, wavy, straight, curly, ombre, micro ring
natural looking, long lasting, easy to use, heat resistant, high quality, tangle free, silky

beauty | lipstick | lipstick | 5-35 | color=lip, quantity=pack_count
beauty & personal care › makeup › lips › lipstick
matte, liquid, glossy, satin, velvet, tinted, creamy, sheer
long lasting, cruelty free, paraben free, waterproof, highly pigmented, moisturizing, vegan

beauty | shampoo | shampoo | 6-40 | scent=scent, size=volume
beauty & personal care › hair care › shampoo & conditioner › shampoos
clarifying, volumizing, hydrating, anti dandruff, color safe, keratin, argan oil, tea tree
sulfate free, paraben free, natural ingredients, cruelty free, dry hair, hair growth, itchy scalp

beauty | face moisturizer | face moisturizer | 8-70 | size=volume, quantity=pack_count
beauty & personal care › skin care › face › creams & moisturizers › face moisturizers
overnight, daily, anti aging, oil free, gel, whipped, mineral, barrier repair
sensitive skin, fragrance free, non comedogenic, dry skin, fine lines, hyaluronic acid, vegan

beauty | nail polish | nail polish | 4-25 | color=nail, size=polish_size
beauty & personal care › foot, hand & nail care › nail art & polish › nail polish
gel, glitter, quick dry, chrome, shimmer, neon, pastel, holographic
long lasting, non toxic, easy to use, chip resistant, high gloss, salon quality

beauty | makeup brush set | makeup brushes | 7-45 | color=metal, size=piece_count
beauty & personal care › tools & accessories › makeup brushes & tools › brush sets
kabuki, travel, professional, foundation, eyeshadow, contour, mini, blending
easy to clean, soft bristles, cruelty free, high quality, travel size, dense bristles

beauty | deodorant | deodorant | 5-25 | scent=scent, size=count_pack
beauty & personal care › personal care › deodorants & antiperspirants › deodorants
natural, clinical, roll-on, stick, spray, sport, charcoal, whole body
long lasting, aluminum free, natural ingredients, sensitive skin, travel size, cruelty free

electronics | wireless earbuds | wireless earbuds | 15-150 | color=device, style=earbud_style
electronics › headphones, earbuds & accessories › headphones › earbud headphones
sport, true wireless, open ear, gaming, waterproof, mini, bass boosted, over ear hook
noise cancelling, fast charging, hands free, long battery life, water resistant, touch control

electronics | phone case | phone case | 6-35 | color=basic, style=phone_model
cell phones & accessories › cases, holsters & sleeves › basic cases
clear, wallet, rugged, slim, leather, glitter, magnetic, kickstand
shock absorbing, wireless charging, easy install, anti scratch, drop protection, raised edges

electronics | hdmi cable | hdmi cable | 5-30 | size=cable_length, quantity=pack_count
electronics › accessories & supplies › audio & video accessories › cables › hdmi cables
braided, 8k, 4k, right angle, fiber optic, flat, coiled, slim
high speed, gold plated, high definition, plug and play, durable braided

electronics | bluetooth speaker | bluetooth speaker | 15-120 | color=device, quantity=pack_count
electronics › portable audio & video › portable speakers & docks › portable bluetooth speakers
portable, outdoor, mini, party, shower, retro, smart, rugged
long battery life, stereo sound, hands free, easy carry, water resistant, deep bass

electronics | tv wall mount | tv wall mount | 18-90 | size=tv_size
electronics › television & video › accessories › tv mounts, stands & turntables › wall mounts
full motion, tilting, fixed, ceiling, corner, swivel, articulating, low profile
easy install, heavy duty, space saving, cable management, wall mount

electronics | usb c charger | usb c charger | 8-45 | color=device, style=watt
electronics › accessories & supplies › power accessories › chargers & adapters
wall, car, multi port, gan, travel, foldable, dual, compact
fast charging, compact size, overcurrent protection, universal compatibility, travel friendly

electronics | memory card | micro sd card | 6-60 | size=capacity, quantity=pack_count
electronics › computers & accessories › memory cards › micro sd cards
micro sd, sdxc, high endurance, extreme, ultra, class 10, u3, v30
high speed, 4k video, shock proof, water resistant, full hd

electronics | mouse | gaming mouse | 10-80 | color=device
electronics › computers & accessories › keyboards, mice & accessories › mice
wireless, ergonomic, rgb, lightweight, silent, vertical, ambidextrous, honeycomb
plug and play, high precision, long battery life, programmable buttons, easy carry

grocery | protein bar | protein bars | 10-45 | flavor name=bar_flavor, size=bar_count
grocery & gourmet food › snacks & sweets › snack bars › protein bars
keto, vegan, whey, plant based, low sugar, chewy, crispy, layered
gluten free, low carb, non gmo, high protein, sugar free, keto friendly, individually wrapped

grocery | ground coffee | ground coffee | 8-40 | size=coffee_weight, flavor name=coffee_flavor
grocery & gourmet food › beverages › coffee, tea & cocoa › coffee › ground coffee
dark roast, medium roast, light roast, espresso, decaf, french roast, breakfast blend, cold brew
usda organic, fair trade, low acid, kosher, non gmo, single origin

grocery | herbal tea | herbal tea | 4-25 | size=tea_count, quantity=pack_count
grocery & gourmet food › beverages › coffee, tea & cocoa › tea › herbal
chamomile, peppermint, ginger, hibiscus, rooibos, lemon balm, bedtime, detox
caffeine free, usda organic, non gmo, kosher, gluten free, individually wrapped

grocery | olive oil | extra virgin olive oil | 9-45 | size=oil_volume, quantity=pack_count
grocery & gourmet food › pantry staples › cooking oils, vinegars & sprays › oils › olive
cold pressed, extra virgin, italian, greek, spanish, first press, unfiltered, garlic infused
usda organic, non gmo, kosher, gluten free, high polyphenol, glass bottle

grocery | gummy candy | gummy candy | 4-30 | flavor name=candy_flavor, size=candy_weight
grocery & gourmet food › candy & chocolate › gummy candy
sour, fruity, vegan, gummy bear, gummy worm, peach ring, assorted, tropical
gluten free, fat free, non gmo, kosher, individually wrapped, real fruit juice

grocery | mixed nuts | mixed nuts | 7-40 | size=nut_weight, flavor name=nut_flavor
grocery & gourmet food › snacks & sweets › nuts & seeds › mixed nuts
roasted, raw, salted, unsalted, honey roasted, trail mix, cashew, almond
non gmo, gluten free, kosher, high protein, keto friendly, resealable bag, vegan

grocery | pasta | pasta | 3-30 | size=pasta_pack
grocery & gourmet food › pasta & noodles › dry pasta
spaghetti, penne, fusilli, rigatoni, whole wheat, chickpea, lentil, bronze cut
non gmo, usda organic, high protein, low carb, kosher, plant based

grocery | hot sauce | hot sauce | 4-25 | size=sauce_volume, quantity=pack_count
grocery & gourmet food › condiments & salad dressings › sauces › hot sauce
habanero, chipotle, sriracha, ghost pepper, jalapeno, garlic chili, buffalo, smoky
gluten free, non gmo, vegan, small batch, sugar free, kosher

fashion | t-shirt | men t-shirt | 8-35 | color=basic, size=apparel
clothing, shoes & jewelry › men › clothing › shirts › t-shirts
crew neck, v-neck, graphic, pocket, henley, long sleeve, athletic, oversized
machine washable, slim fit, short sleeve, moisture wicking, soft cotton, classic fit

fashion | dress | women dress | 18-60 | color=basic, size=apparel
clothing, shoes & jewelry › women › clothing › dresses › casual
maxi, midi, wrap, floral, shift, bodycon, swing, boho
machine washable, pockets, elastic waist, short sleeve, long sleeve, daily wear, loose fit

fashion | running shoes | running shoes | 30-120 | color=basic, size=shoe
clothing, shoes & jewelry › men › shoes › athletic › running › road running
lightweight, trail, breathable mesh, cushioned, slip on, wide toe, minimalist, walking
rubber sole, non slip, arch support, memory foam, lace up, breathable

fashion | jeans | women jeans | 20-70 | color=denim, size=waist
clothing, shoes & jewelry › women › clothing › jeans
skinny, high waisted, bootcut, straight leg, mom, wide leg, ripped, stretch
machine washable, button closure, slim fit, stretch fabric, classic fit, five pocket

fashion | hoodie | hoodie | 18-60 | color=basic, size=apparel
clothing, shoes & jewelry › men › clothing › fashion hoodies & sweatshirts
pullover, zip up, fleece, heavyweight, sherpa lined, cropped, athletic, graphic
machine washable, drawstring closure, long sleeve, kangaroo pocket, soft fleece, regular fit

fashion | socks | socks | 8-30 | color=basic, size=sock
clothing, shoes & jewelry › men › clothing › socks › athletic socks
ankle, crew, no show, compression, wool, cushioned, low cut, dress
moisture wicking, arch support, breathable, machine washable, non slip

fashion | sunglasses | polarized sunglasses | 10-80 | color=frame
clothing, shoes & jewelry › men › accessories › sunglasses & eyewear accessories › sunglasses
aviator, wayfarer, round, cat eye, sport, oversized, square, rimless
uv protection, polarized lenses, lightweight frame, scratch resistant, case included

home | throw pillow cover | throw pillow covers | 8-35 | color=basic, size=pillow
home & kitchen › bedding › decorative pillows, inserts & covers › throw pillow covers
velvet, linen, boho, farmhouse, striped, geometric, faux fur, corduroy
living room, hidden zipper, machine washable, soft and cozy, double sided

home | sheet set | bed sheet set | 20-110 | color=basic, size=bed
home & kitchen › bedding › sheets & pillowcases › sheet & pillowcase sets
microfiber, bamboo, egyptian cotton, flannel, percale, sateen, cooling, deep pocket
machine washable, wrinkle free, breathable, hypoallergenic, soft and cozy, fade resistant

home | coffee table | coffee table | 60-300 | color=wood
home & kitchen › furniture › living room furniture › tables › coffee tables
lift top, round, farmhouse, mid century, glass top, industrial, nesting, rustic
easy assemble, storage space, living room, solid wood, space saving, sturdy construction

home | storage bin | storage bins | 10-50 | color=basic, quantity=pack_count
home & kitchen › storage & organization › baskets, bins & containers › storage bins
foldable, fabric, stackable, woven, clear, cube, collapsible, lidded
space saving, easy carry, closet organizer, sturdy handles, dust proof

home | desk lamp | led desk lamp | 15-70 | color=device
tools & home improvement › lighting & ceiling fans › lamps & shades › desk lamps
led, architect, clamp, dimmable, swing arm, touch, rechargeable, gooseneck
eye caring, usb charging port, adjustable brightness, energy saving, easy install

home | shower curtain | shower curtain | 10-40 | color=basic, size=curtain
home & kitchen › bath › bathroom accessories › shower curtains, hooks & liners › shower curtains
fabric, waffle weave, botanical, ruffled, extra long, textured, tropical, abstract
machine washable, water repellent, hooks included, quick drying, mildew resistant

home | dining chair | dining chairs | 50-250 | color=basic, quantity=chair_count
home & kitchen › furniture › kitchen & dining room furniture › chairs
upholstered, mid century, wooden, velvet, farmhouse, modern, tufted, armless
easy assemble, dining room, solid wood, padded seat, sturdy construction

home | knife set | knife set | 20-150 | color=device, size=piece_count
home & kitchen › kitchen & dining › cutlery & knife accessories › kitchen knife sets
stainless steel, japanese, german steel, block, magnetic, damascus, ceramic, chef
dishwasher safe, high carbon, ergonomic handle, razor sharp, rust resistant
"""


# Short option names in `_TYPES`, written out as the original data spells them.
_OPTION_NAMES = {"quantity": "item package quantity"}


def _parse_types(text: str) -> tuple[ProductType, ...]:
    types = []
    for block in text.strip().split("\n\n"):
        head, path, variants, attributes = block.strip().splitlines()
        category, noun, query, price, options = (field.strip() for field in head.split("|"))
        low, high = price.split("-")
        pairs = (pair.split("=") for pair in options.split(","))
        types.append(
            ProductType(
                category=category,
                path=path.strip(),
                query=query,
                noun=noun,
                variants=tuple(v.strip() for v in variants.split(",")),
                attributes=tuple(a.strip() for a in attributes.split(",")),
                options=tuple(
                    (_OPTION_NAMES.get(n.strip(), n.strip()), p.strip()) for n, p in pairs
                ),
                price=(float(low), float(high)),
            )
        )
    return tuple(types)


PRODUCT_TYPES: tuple[ProductType, ...] = _parse_types(_TYPES)

#: Option values per pool. A product offers a few values of each of its options; the
#: generator skips values the reward could confuse (see `synthetic._pick_values`).
OPTION_POOLS: dict[str, tuple[str, ...]] = {
    name: tuple(v.strip() for v in values.split(","))
    for name, values in {
        "basic": "black, white, navy, grey, red, beige, pink, green, brown, purple, yellow, "
        "teal, burgundy, khaki, ivory, olive, orange, mustard, lavender, coral, charcoal, sage",
        "hair": "natural black, dark brown, light brown, blonde, auburn, platinum, ash blonde, "
        "chestnut, honey blonde, burgundy red",
        "hair_length": "12 inch, 14 inch, 16 inch, 18 inch, 20 inch, 22 inch, 24 inch",
        "lip": "ruby red, nude pink, berry, coral, mauve, plum, cherry, rosewood, brick red, peach",
        "nail": "classic red, baby pink, midnight blue, emerald green, silver glitter, nude beige, "
        "coral, lilac, black, white",
        "metal": "rose gold, silver, gold, black, champagne, copper, bronze, pearl white",
        "device": "black, white, silver, space gray, navy blue, red, pink, green, midnight, teal",
        "denim": "light wash, medium wash, dark wash, black, white, stone wash, indigo, grey",
        "frame": "black, tortoise, gold, silver, clear, brown, blue mirror, green lens",
        "wood": "walnut, espresso, natural oak, white, rustic brown, grey wash, black, cherry",
        "scent": "lavender, unscented, coconut, vanilla, citrus, eucalyptus, rose, fresh linen, "
        "cucumber melon, sandalwood, tea tree",
        "volume": "1.7 fl oz, 3.4 fl oz, 8 fl oz, 12 fl oz, 16 fl oz, 32 fl oz",
        "count_pack": "pack of 1, pack of 2, pack of 3, pack of 4, pack of 6",
        "phone_model": "iphone 15, iphone 14, galaxy s24, galaxy s23, pixel 8, pixel 7a, moto g",
        "cable_length": "1.5 feet, 3 feet, 6 feet, 10 feet, 15 feet, 25 feet",
        "pack_count": "1 pack, 2 pack, 3 pack, 5 pack, 10 pack",
        "tv_size": "13-42 inch, 26-55 inch, 32-65 inch, 37-75 inch, 42-85 inch",
        "watt": "20w, 30w, 45w, 65w, 100w",
        "capacity": "32gb, 64gb, 128gb, 256gb, 512gb, 1tb",
        "bar_flavor": "chocolate peanut butter, cookie dough, birthday cake, salted caramel, "
        "chocolate chip, mint, lemon, cinnamon roll, double chocolate",
        "bar_count": "12 count, 15 count, 18 count, 24 count, 30 count",
        "coffee_weight": "10 ounce, 12 ounce, 2 pound, 32 ounce, 5 pound",
        "coffee_flavor": "original, hazelnut, vanilla, caramel, mocha, pumpkin spice",
        "tea_count": "16 count, 20 count, 40 count, 60 count, 100 count",
        "oil_volume": "16.9 fl oz, 25.3 fl oz, 33.8 fl oz, 68 fl oz, 101 fl oz",
        "candy_flavor": "assorted fruit, sour watermelon, blue raspberry, cherry, green apple, "
        "tropical punch, strawberry",
        "candy_weight": "5 ounce, 8 ounce, 1 pound, 2 pound, 5 pound",
        "nut_weight": "1 pound, 2 pound, 3 pound, 16 ounce, 40 ounce",
        "pasta_pack": "16 ounce (pack of 4), 16 ounce (pack of 6), 12 ounce (pack of 8), "
        "8 ounce (pack of 12)",
        "sauce_volume": "5 fl oz, 10 fl oz, 12 fl oz, 17 fl oz",
        "apparel": "x-small, small, medium, large, x-large, xx-large, 3x-large",
        "shoe": "7, 7.5, 8, 8.5, 9, 9.5, 10, 10.5, 11, 12",
        "waist": "26w x 30l, 28w x 30l, 30w x 32l, 32w x 32l, 34w x 30l, 36w x 32l",
        "sock": "shoe size 5-9, shoe size 6-12, shoe size 9-12, shoe size 12-15",
        "pillow": "12 x 20 inch, 16 x 16 inch, 18 x 18 inch, 20 x 20 inch, 24 x 24 inch",
        "bed": "twin, full, queen, king, california king",
        "curtain": "54 x 78 inch, 72 x 72 inch, 72 x 84 inch, 72 x 96 inch",
        "chair_count": "set of 2, set of 4, set of 6",
        "polish_size": "0.27 fl oz, 0.5 fl oz, 0.6 fl oz, 1 fl oz",
        "piece_count": "6 piece, 8 piece, 12 piece, 15 piece, 20 piece",
        "earbud_style": "classic, pro, lite, max, sport edition",
        "nut_flavor": "original, sea salt, honey, chili lime, smoked, cinnamon sugar",
    }.items()
}

#: Attributes any product of a category may have, on top of its type's own.
CATEGORY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "beauty": (
        "cruelty free",
        "paraben free",
        "travel size",
        "natural ingredients",
        "easy to use",
        "high quality",
        "dermatologist tested",
        "vegan",
    ),
    "electronics": (
        "easy install",
        "easy carry",
        "high performance",
        "compact size",
        "durable",
        "lightweight",
    ),
    "grocery": (
        "gluten free",
        "non gmo",
        "kosher",
        "usda organic",
        "vegan",
        "sugar free",
        "low sodium",
        "keto friendly",
        "plant based",
    ),
    "fashion": (
        "machine washable",
        "hand wash",
        "quick drying",
        "breathable",
        "lightweight",
        "everyday wear",
    ),
    "home": ("easy clean", "eco friendly", "modern design", "high quality", "long lasting"),
}

#: Sentences for descriptions and bullet points, by category; none names an option value.
CATEGORY_LINES: dict[str, tuple[str, ...]] = {
    "beauty": (
        "Dermatologist tested and gentle enough for everyday use",
        "Made without harsh chemicals and never tested on animals",
        "Loved by professional stylists and beauty editors alike",
        "Comes in a recyclable package that makes a thoughtful gift",
        "Backed by a thirty day satisfaction promise",
    ),
    "electronics": (
        "Backed by an eighteen month warranty and friendly customer support",
        "Certified for safety and tested for thousands of hours",
        "Works with most phones, tablets and laptops out of the box",
        "Ships with a quick start guide and everything needed to get going",
        "Built from durable materials that survive daily commutes",
    ),
    "grocery": (
        "Packed fresh in a facility that follows strict quality standards",
        "Sourced from trusted growers and made in small batches",
        "A pantry favourite for busy weeknights and lazy weekends",
        "Great for sharing with family, friends and coworkers",
        "Store in a cool, dry place and enjoy within a few months of opening",
    ),
    "fashion": (
        "Cut for an easy, comfortable fit that lasts all day",
        "Stitched with reinforced seams that hold their shape wash after wash",
        "Pairs well with casual outfits and dressier looks",
        "A wardrobe staple for work, travel and weekends",
        "Designed in house and tested by real customers before release",
    ),
    "home": (
        "Adds a warm, finished look to any room of the house",
        "Built from sturdy materials chosen to last for years",
        "Arrives ready to use with simple step by step instructions",
        "A thoughtful housewarming or wedding gift",
        "Easy to keep clean with a quick wipe or wash",
    ),
}

#: Words that make brand names, two syllables each ("Lumi" + "vora").
BRAND_HEADS = str.split(
    "lumi vero kana sola tera mira nova zeta aria bella cora dyna echo fera gala hana isla "
    "juno kira lora mona nira opal pira quin rosa sage tavi ulta vela wren xeno yara zola"
)
BRAND_TAILS = str.split(
    "vora nix tek ly ra bloom wave craft haus line max co point nest glow field"
)

#: Instruction phrasings shared by every split: `{item}` is "a clip-in hair extension",
#: `{atts}` the goal attributes, `{opts}` the option clause (may be empty), `{price}` "40.00".
SHARED_TEMPLATES = (
    "i need {item} which is {atts}{opts}, and price lower than {price} dollars",
    "i am looking for {item} that is {atts}{opts}, and price lower than {price} dollars",
    "i want to buy {item} that is {atts}{opts}, and price lower than {price} dollars",
    "find me {item} that is {atts}{opts}, and price lower than {price} dollars",
    "get me {item}, it should be {atts}{opts}, and price lower than {price} dollars",
    "please find {item} which is {atts}{opts}, and price lower than {price} dollars",
    "i'm looking for {item} that is {atts}{opts}, and price lower than {price} dollars",
)
#: Phrasings that only valid and test instructions use: held-out wording.
HELD_OUT_TEMPLATES = (
    "shopping for {item}: it has to be {atts}{opts}. keep it under {price} dollars",
    "my budget is {price} dollars. i'd like {item} that's {atts}{opts}",
    "looking to purchase {item}{opts} that is {atts}, priced below {price} dollars",
)

#: How an option value is asked for, by option name (`{v}` is the value).
OPTION_PHRASES: dict[str, tuple[str, ...]] = {
    "color": (" in {v}", " in {v} color", ", color: {v}"),
    "size": (" in size {v}", ", size {v}", ", size: {v}"),
    "flavor name": (" in {v} flavor", ", flavor: {v}"),
    "scent": (" with {v} scent", ", scent: {v}"),
    "style": (" in the {v} version", ", style: {v}"),
    "item package quantity": (", {v}", " in a {v}"),
}
